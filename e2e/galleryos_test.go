package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"vlab/internal/fixture"
)

// TestCreateFromGalleryOS: `vlab create NAME --os ID` takes an installer
// ISO from the gallery (a local HTTP server here): the first transfer is
// cut and the next run resumes it with a Range request and a progress
// report, the checksum (pinned, or from the distro's SHA256SUMS) is
// checked, the ISO goes into the library once and into the VM's CD drive,
// and the entry's profile gives the VM its hardware and an installer disk.
// A corrupt download is fetched once more, then refused, leaving no VM.
func TestCreateFromGalleryOS(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	fixture.Program(t, "qemu-img")
	isoPath := filepath.Join(fixture.Dir(), "iso", "installer-x86_64.iso")
	data, err := os.ReadFile(isoPath)
	if err != nil {
		fixture.Need(t, "fixture iso/installer-x86_64.iso missing: run make fixtures")
	}
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	e := newEnv(t)

	var mu sync.Mutex
	var ranges []string
	cut := true
	corrupt := append([]byte(nil), data...)
	corrupt[len(corrupt)/2] ^= 0xff
	corruptFile := filepath.Join(e.home, "corrupt.iso")
	os.WriteFile(corruptFile, corrupt, 0o600)
	srv := e.serveGallery(map[string]http.HandlerFunc{
		"/debian/tiny-installer.iso": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			first := cut
			cut = false
			mu.Unlock()
			if first { // the connection drops after 4 MiB
				w.Header().Set("Content-Length", strconv.Itoa(len(data)))
				w.Write(data[:4<<20])
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler)
			}
			http.ServeFile(w, r, isoPath)
		},
		"/sums/SHA256SUMS": func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(good + "  other.iso\n" + good + " *tiny.iso\n"))
		},
		"/sums/tiny.iso":      serveFile(isoPath),
		"/mirror/broken.iso":  serveFile(corruptFile),
		"/images/cloud.qcow2": serveFile(corruptFile),
	}, `
[[image]]
id = "tiny-installer"
title = "Tiny installer"
arch = "x86_64"
kind = "iso"
url = "@URL@/debian/tiny-installer.iso"
sha256 = "`+good+`"
profile = "debian"

[[image]]
id = "tiny-sums"
title = "Tiny installer, checksum from SHA256SUMS"
arch = "x86_64"
kind = "iso"
url = "@URL@/sums/tiny.iso"
sums = "@URL@/sums/SHA256SUMS"
profile = "linux-bios"

[[image]]
id = "tiny-broken"
title = "A mirror that serves the wrong bytes"
arch = "x86_64"
kind = "iso"
url = "@URL@/mirror/broken.iso"
sha256 = "`+good+`"
profile = "debian"

[[image]]
id = "tiny-cloud"
title = "A cloud image"
arch = "x86_64"
kind = "cloud"
url = "@URL@/images/cloud.qcow2"
sha256 = "`+good+`"
profile = "linux-bios"
`)

	// The first transfer is cut: one error line after the progress, no VM.
	_, errs, code := e.run("create", "inst", "--os", "tiny-installer", "--display", "none", "--net", "none")
	lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
	if last := lines[len(lines)-1]; code == 0 || !strings.HasPrefix(last, "vlab: ") || !strings.Contains(last, "run the same command again to resume") {
		t.Fatalf("interrupted create --os: exit %d, stderr:\n%s", code, errs)
	}
	if names := e.vmNames(); len(names) != 0 {
		t.Errorf("an interrupted download left vms %v", names)
	}
	// The same command resumes where it stopped.
	out, errs, code := e.run("create", "inst", "--os", "tiny-installer", "--display", "none", "--net", "none")
	if code != 0 {
		t.Fatalf("create --os after the cut: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(errs, "resuming at 4M") || !strings.Contains(errs, "100%") {
		t.Errorf("progress on stderr lacks the resume and 100%%:\n%s", errs)
	}
	mu.Lock()
	if len(ranges) != 2 || ranges[1] != "bytes=4194304-" {
		t.Errorf("Range headers %q, want the second request to resume at 4194304", ranges)
	}
	mu.Unlock()
	if !strings.Contains(out, "created inst") || !strings.Contains(out, "profile debian (from gallery entry tiny-installer)") {
		t.Errorf("create --os said:\n%s", out)
	}

	// The VM: the ISO from the library in its CD drive, the profile's
	// hardware, a disk to install to.
	var v struct {
		Profile string `json:"profile"`
		CPUs    int    `json:"cpus"`
		Memory  string `json:"memory"`
		Machine string `json:"machine"`
		Boot    struct {
			ISO string `json:"iso"`
		} `json:"boot"`
		Disks []struct{ Size string } `json:"disks"`
	}
	if err := json.Unmarshal([]byte(e.ok("show", "inst", "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Profile != "debian" || v.CPUs != 2 || v.Memory != "2G" || v.Machine != "q35" {
		t.Errorf("vm from --os: profile %q, %d cpus, memory %s, machine %s; want debian's 2 cpus, 2G, q35", v.Profile, v.CPUs, v.Memory, v.Machine)
	}
	if len(v.Disks) != 1 || v.Disks[0].Size != "20G" {
		t.Errorf("disks %+v, want the profile's 20G installer disk", v.Disks)
	}
	if iso, err := os.ReadFile(v.Boot.ISO); err != nil || sha256.Sum256(iso) != sum {
		t.Errorf("boot.iso %q: %v, want the gallery's ISO", v.Boot.ISO, err)
	}
	if argv := e.ok("cmdline", "inst"); !strings.Contains(argv, v.Boot.ISO) {
		t.Errorf("qemu argv lacks the ISO %s:\n%s", v.Boot.ISO, argv)
	}
	var lib []struct{ Name, SHA256, Source string }
	json.Unmarshal([]byte(e.ok("iso", "list", "--json")), &lib)
	if len(lib) != 1 || lib[0].SHA256 != good || !strings.HasSuffix(lib[0].Source, "/debian/tiny-installer.iso") {
		t.Errorf("iso library = %+v, want the one gallery ISO", lib)
	}

	// A second VM of the same id downloads nothing; --profile still wins.
	before := srv.hits["/debian/tiny-installer.iso"].Load()
	out = e.ok("create", "inst2", "--os", "tiny-installer", "--profile", "linux-bios", "--display", "none", "--net", "none")
	if n := srv.hits["/debian/tiny-installer.iso"].Load(); n != before {
		t.Errorf("second create --os asked the server again (%d requests, then %d)", before, n)
	}
	if !strings.Contains(out, "profile linux-bios") {
		t.Errorf("--profile did not win over the entry's:\n%s", out)
	}

	// A checksum from the distro's SHA256SUMS.
	e.ok("create", "sums", "--os", "tiny-sums", "--display", "none", "--net", "none")
	if srv.hits["/sums/SHA256SUMS"].Load() == 0 {
		t.Error("create --os tiny-sums never read SHA256SUMS")
	}

	// Wrong bytes: fetched twice, refused, nothing kept.
	_, errs, code = e.run("create", "bad", "--os", "tiny-broken", "--display", "none", "--net", "none")
	lines = strings.Split(strings.TrimRight(errs, "\n"), "\n")
	if last := lines[len(lines)-1]; code == 0 || !strings.Contains(last, "checksum mismatch") || !strings.Contains(last, "nothing was kept") {
		t.Errorf("corrupt download: exit %d, stderr:\n%s", code, errs)
	}
	if n := srv.hits["/mirror/broken.iso"].Load(); n != 2 {
		t.Errorf("corrupt download fetched %d times, want 2 (one retry)", n)
	}
	if names := e.vmNames(); strings.Join(names, " ") != "inst inst2 sums" {
		t.Errorf("vms after the refused download: %v, want inst inst2 sums", names)
	}
	lib = nil
	json.Unmarshal([]byte(e.ok("iso", "list", "--json")), &lib)
	if len(lib) != 2 {
		t.Errorf("iso library after the refused download = %+v, want the two good ISOs", lib)
	}

	// Bad input: one line naming the fix, exit 2, no VM.
	e.fail([]string{"tiny-cloud", "cloud image", "--image tiny-cloud"}, "create", "x", "--os", "tiny-cloud")
	e.fail([]string{"tiny-instaler", "did you mean", "tiny-installer"}, "create", "x", "--os", "tiny-instaler")
	e.fail([]string{"tiny-installer", "--arch x86_64"}, "create", "x", "--os", "tiny-installer", "--arch", "aarch64")
	e.fail([]string{"--os", "--iso"}, "create", "x", "--os", "tiny-installer", "--iso", isoPath)
	e.fail([]string{"tiny-installer", "installer ISO", "--os tiny-installer"}, "create", "x", "--image", "tiny-installer")
	for _, args := range [][]string{{"--os", "tiny-cloud"}, {"--os", "tiny-instaler"}, {"--image", "tiny-installer"}} {
		if _, _, code := e.run(append([]string{"create", "x"}, args...)...); code != 2 {
			t.Errorf("create x %v exited %d, want 2 (a usage error)", args, code)
		}
	}
	if names := e.vmNames(); strings.Join(names, " ") != "inst inst2 sums" {
		t.Errorf("vms after refused creates: %v, want inst inst2 sums", names)
	}
}

// vmNames lists the env's VMs by name, as `vlab list --json` orders them.
func (e *env) vmNames() []string {
	e.t.Helper()
	var vms []struct{ Name string }
	if err := json.Unmarshal([]byte(e.ok("list", "--json")), &vms); err != nil {
		e.t.Fatalf("list --json: %v", err)
	}
	var names []string
	for _, v := range vms {
		names = append(names, v.Name)
	}
	return names
}

// galleryServer serves a test gallery's downloads from a local HTTP
// server, as a distro's mirror would, and counts the requests per path.
type galleryServer struct {
	*httptest.Server
	hits map[string]*atomic.Int64
}

// serveFile answers with a local file, Range requests included (resumable).
func serveFile(file string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) }
}

// serveGallery serves handlers (URL path → handler) and writes a gallery
// file with entries (TOML, "@URL@" standing for the server's address) that
// the env's vlab uses through VLAB_GALLERY.
func (e *env) serveGallery(handlers map[string]http.HandlerFunc, entries string) *galleryServer {
	e.t.Helper()
	g := &galleryServer{hits: map[string]*atomic.Int64{}}
	mux := http.NewServeMux()
	for p, h := range handlers {
		n := new(atomic.Int64)
		g.hits[p] = n
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			h(w, r)
		})
	}
	g.Server = httptest.NewServer(mux)
	e.t.Cleanup(g.Close)
	path := filepath.Join(e.home, "test gallery.toml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(entries, "@URL@", g.URL)), 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.vars = append(e.vars, "VLAB_GALLERY="+path)
	return g
}
