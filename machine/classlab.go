package machine

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"vlab/emulator"
	"vlab/internal/lazyre"
	"vlab/profiles"
)

// ClassLab is a lab file: the VMs and lab networks a teacher hands to a
// class as one TOML file. It is data from someone else: every name and
// rule in it is validated as the CLI validates the same input, and nothing
// in it names a host path vlab would follow except the images a VM boots.
//
//	[[network]]
//	name = "lan"
//	subnet = "10.77.1.0/24"
//	dhcp = true
//
//	[[vm]]
//	name = "server"
//	networks = ["lan"]
//	forwards = ["tcp:8080:80"]
//	snapshot = "clean"
type ClassLab struct {
	Networks []ClassLabNetwork `toml:"network"`
	VMs      []ClassLabVM      `toml:"vm"`
}

// ClassLabNetwork is one lab network of a lab file (see Lab).
type ClassLabNetwork struct {
	Name   string `toml:"name"`
	Subnet string `toml:"subnet"`
	DHCP   bool   `toml:"dhcp"`
}

// ClassLabVM is one VM of a lab file, started in file order.
type ClassLabVM struct {
	Name     string   `toml:"name"`
	Profile  string   `toml:"profile"`
	Arch     string   `toml:"arch"`
	Memory   string   `toml:"memory"`
	CPUs     int      `toml:"cpus"`
	Disk     string   `toml:"disk"`
	ISO      string   `toml:"iso"`
	Kernel   string   `toml:"kernel"`
	Initrd   string   `toml:"initrd"`
	Append   string   `toml:"append"`
	Networks []string `toml:"networks"` // lab networks, one NIC each
	Forwards []string `toml:"forwards"` // user-mode forwards, ParseForward's form
	Snapshot string   `toml:"snapshot"` // taken at first `lab up`, restored by `lab reset`
}

// ParseClassLab parses and validates a lab file. Every error names the
// file's line: TOML syntax errors where the parser stopped, unknown keys
// (typos) where they are written, semantic errors where the offending
// table's key is.
func ParseClassLab(file string, data []byte) (*ClassLab, error) {
	var lab ClassLab
	md, err := toml.Decode(string(data), &lab)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("lab file %s:%d: %s", file, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("lab file %s: %w", file, err)
	}
	idx := newTOMLIndex(data)
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0]
		return nil, fmt.Errorf("lab file %s:%d: unknown key %q: check its spelling (keys: network name/subnet/dhcp; vm name/profile/arch/memory/cpus/disk/iso/kernel/initrd/append/networks/forwards/snapshot)",
			file, idx.line(k), k.String())
	}
	bad := func(table string, n int, key, format string, args ...any) error {
		return fmt.Errorf("lab file %s:%d: %s", file, idx.keyLine(table, n, key), fmt.Sprintf(format, args...))
	}
	if len(lab.VMs) == 0 {
		return nil, fmt.Errorf("lab file %s: no [[vm]]: a lab needs at least one vm", file)
	}
	nets := map[string]bool{}
	for i, n := range lab.Networks {
		if err := ValidateLabName(n.Name); err != nil {
			return nil, bad("network", i, "name", "%v", err)
		}
		if nets[n.Name] {
			return nil, bad("network", i, "name", "network %q is described twice", n.Name)
		}
		nets[n.Name] = true
		if n.Subnet != "" {
			if p, err := netip.ParsePrefix(n.Subnet); err != nil || !p.Addr().Is4() {
				return nil, bad("network", i, "subnet", "subnet %q of network %q: write an IPv4 CIDR, e.g. 10.77.1.0/24", n.Subnet, n.Name)
			}
		}
	}
	vms := map[string]bool{}
	for i, v := range lab.VMs {
		if err := ValidateName(v.Name); err != nil {
			return nil, bad("vm", i, "name", "%v", err)
		}
		if vms[v.Name] {
			return nil, bad("vm", i, "name", "vm %q is described twice", v.Name)
		}
		vms[v.Name] = true
		if err := checkClassLabVM(v, nets, func(key, format string, args ...any) error { return bad("vm", i, key, format, args...) }); err != nil {
			return nil, err
		}
	}
	return &lab, nil
}

// checkClassLabVM checks one [[vm]] of a lab file against the networks it
// describes; bad makes an error that names the line of the vm's key.
func checkClassLabVM(v ClassLabVM, nets map[string]bool, bad func(key, format string, args ...any) error) error {
	for _, n := range v.Networks {
		if !nets[n] {
			return bad("networks", "vm %q joins network %q, which the file does not describe: add a [[network]] named %q", v.Name, n, n)
		}
	}
	for _, f := range v.Forwards {
		if _, err := ParseForward(f); err != nil {
			return bad("forwards", "vm %q: %v", v.Name, err)
		}
	}
	if v.Snapshot != "" {
		if err := ValidateTag(v.Snapshot); err != nil {
			return bad("snapshot", "vm %q snapshot: %v", v.Name, err)
		}
		if v.Disk == "" {
			return bad("snapshot", "vm %q has a snapshot but no disk to keep it in: add disk = \"1G\"", v.Name)
		}
	}
	if v.Arch != "" {
		if _, err := emulator.ParseArch(v.Arch); err != nil {
			return bad("arch", "vm %q: %v", v.Name, err)
		}
	}
	if v.Profile != "" {
		if _, err := profiles.Get(v.Profile); err != nil {
			return bad("profile", "vm %q: %v", v.Name, err)
		}
	}
	for _, sz := range []struct{ key, val string }{{"memory", v.Memory}, {"disk", v.Disk}} {
		if sz.val == "" {
			continue
		}
		if n, err := ParseSize(sz.val); err != nil || n == 0 {
			return bad(sz.key, "vm %q: %s %q: write a size such as 512M or 2G", v.Name, sz.key, sz.val)
		}
	}
	if v.CPUs < 0 {
		return bad("cpus", "vm %q: cpus %d: write a positive count", v.Name, v.CPUs)
	}
	return nil
}

// tomlIndex finds the lines of array-of-tables entries and their keys in a
// TOML text (BurntSushi/toml reports positions for syntax errors only).
type tomlIndex struct {
	lines []string
}

func newTOMLIndex(data []byte) tomlIndex {
	return tomlIndex{lines: strings.Split(string(data), "\n")}
}

var tomlHeader = lazyre.New(`^\s*\[\[\s*([A-Za-z0-9_-]+)\s*\]\]`)
var tomlAnyHeader = lazyre.New(`^\s*\[`)

// keyLine returns the 1-based line of key in the n-th [[table]] (0-based),
// or of the table's header when the key is not written there.
func (x tomlIndex) keyLine(table string, n int, key string) int {
	seen, start := -1, -1
	for i, l := range x.lines {
		if m := tomlHeader().FindStringSubmatch(l); m != nil && m[1] == table {
			seen++
			if seen == n {
				start = i
				break
			}
		}
	}
	if start < 0 {
		return 1
	}
	re := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(key) + `"?\s*=`)
	for i := start + 1; i < len(x.lines) && !tomlAnyHeader().MatchString(x.lines[i]); i++ {
		if re.MatchString(x.lines[i]) {
			return i + 1
		}
	}
	return start + 1
}

// line returns the line of an undecoded key: its last part written as a
// key, in the table its first part names (the first such line otherwise).
func (x tomlIndex) line(k toml.Key) int {
	last := k[len(k)-1]
	re := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(last) + `"?\s*=`)
	for i, l := range x.lines {
		if re.MatchString(l) {
			return i + 1
		}
	}
	hdr := regexp.MustCompile(`^\s*\[\[?\s*` + regexp.QuoteMeta(k[0]) + `\s*\]`)
	for i, l := range x.lines {
		if hdr.MatchString(l) {
			return i + 1
		}
	}
	return 1
}
