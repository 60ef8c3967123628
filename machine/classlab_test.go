package machine

import (
	"strings"
	"testing"
)

const classLabOK = `# two VMs on one lab network
[[network]]
name = "lan"
subnet = "10.77.1.0/24"
dhcp = true

[[vm]]
name = "server"
networks = ["lan"]
forwards = ["tcp:8080:80"]
snapshot = "clean"
disk = "64M"

[[vm]]
name = "client"
networks = ["lan"]
`

func TestParseClassLab(t *testing.T) {
	lab, err := ParseClassLab("lab.toml", []byte(classLabOK))
	if err != nil {
		t.Fatal(err)
	}
	if len(lab.VMs) != 2 || lab.VMs[0].Name != "server" || lab.VMs[1].Name != "client" ||
		len(lab.Networks) != 1 || !lab.Networks[0].DHCP || lab.VMs[0].Snapshot != "clean" {
		t.Errorf("parsed %+v", lab)
	}
}

// TestParseClassLabErrorsNameTheLine: a typo, a syntax error and semantic
// errors each give an error naming the file, the line and the problem.
func TestParseClassLabErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		name, edit, with string
		want             []string
	}{
		{"typo", `snapshot = "clean"`, `snapshto = "clean"`, []string{"lab.toml:11:", `unknown key "vm.snapshto"`}},
		{"syntax", `dhcp = true`, `dhcp = tru`, []string{"lab.toml:5:"}},
		{"unknown network", "name = \"client\"\nnetworks = [\"lan\"]", "name = \"client\"\nnetworks = [\"wan\"]", []string{"lab.toml:16:", `network "wan"`}},
		{"bad forward", `forwards = ["tcp:8080:80"]`, `forwards = ["tcp:80800:80"]`, []string{"lab.toml:10:", "tcp:80800:80"}},
		{"bad vm name", `name = "client"`, `name = "../x"`, []string{"lab.toml:15:"}},
		{"duplicate vm", `name = "client"`, `name = "server"`, []string{"lab.toml:15:", "twice"}},
		{"snapshot without disk", `disk = "64M"`, `cpus = 1`, []string{"lab.toml:11:", "no disk", `disk = "1G"`}},
		{"bad size", `disk = "64M"`, `disk = "64Q"`, []string{"lab.toml:12:", `disk "64Q"`, "512M"}},
		{"unknown arch", `name = "client"`, "name = \"client\"\narch = \"vax\"", []string{"lab.toml:16:", "vax"}},
		{"unknown profile", `name = "client"`, "name = \"client\"\nprofile = \"win3000\"", []string{"lab.toml:16:", "win3000"}},
		{"bad subnet", `subnet = "10.77.1.0/24"`, `subnet = "lan"`, []string{"lab.toml:4:", "IPv4 CIDR"}},
	}
	for _, c := range cases {
		text := strings.Replace(classLabOK, c.edit, c.with, 1)
		if text == classLabOK {
			t.Fatalf("%s: edit not applied", c.name)
		}
		_, err := ParseClassLab("lab.toml", []byte(text))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
		if !strings.HasPrefix(err.Error(), "lab file lab.toml:") {
			t.Errorf("%s: error %q does not start with the file and line", c.name, err)
		}
	}
}

// TestClassLabSpec: a lab file's VM becomes a Spec with the file's values,
// its profile's, then vlab's defaults; lab NICs come first, then one
// user-mode NIC for the forwards; an installer VM gets a disk.
func TestClassLabSpec(t *testing.T) {
	spec, err := classLabSpec(ClassLabVM{Name: "s", Kernel: "k", Memory: "300M", Disk: "1G",
		Networks: []string{"a", "b"}, Forwards: []string{"tcp:8080:80"}}, "/labs/week3")
	if err != nil {
		t.Fatal(err)
	}
	if spec.Boot.Kernel != "/labs/week3/k" || spec.Memory != 300*MiB || spec.CPUs != 1 || len(spec.Disks) != 1 || spec.Disks[0].Size != GiB ||
		len(spec.NICs) != 3 || spec.NICs[0].Lab != "a" || spec.NICs[1].Lab != "b" || spec.NICs[2].Mode != "user" || len(spec.NICs[2].Forwards) != 1 {
		t.Errorf("spec %+v", spec)
	}
	inst, err := classLabSpec(ClassLabVM{Name: "c", Profile: "debian", ISO: "/isos/d.iso"}, "/labs")
	if err != nil {
		t.Fatal(err)
	}
	if len(inst.Disks) != 1 || inst.Disks[0].Size == 0 || inst.Boot.Order != "dc" || inst.Profile != "debian" || len(inst.NICs) != 0 {
		t.Errorf("installer spec %+v", inst)
	}
}
