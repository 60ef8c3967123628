package e2e

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// completions runs `vlab __complete args...` and returns the candidates
// (without descriptions).
func (e *env) completions(args ...string) []string {
	e.t.Helper()
	out := e.ok(append([]string{"__complete"}, args...)...)
	var got []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, ":") {
			continue
		}
		got = append(got, strings.SplitN(line, "\t", 2)[0])
	}
	return got
}

// completionDirective runs `vlab __complete args...` and returns cobra's
// directive (the number on the ":N" line): 0 lets the shell complete
// files, 2 adds no space, 4 (NoFileComp) offers no files.
func (e *env) completionDirective(args ...string) int {
	e.t.Helper()
	out := e.ok(append([]string{"__complete"}, args...)...)
	for _, line := range strings.Split(out, "\n") {
		if n, ok := strings.CutPrefix(line, ":"); ok {
			d, err := strconv.Atoi(n)
			if err != nil {
				e.t.Fatalf("vlab __complete %q: directive line %q", args, line)
			}
			return d
		}
	}
	e.t.Fatalf("vlab __complete %q: no directive line in %q", args, out)
	return -1
}

// TestCompletionDynamic: shell completion offers VM names by state, snapshot
// tags, profiles, labs and ISO names, through the `vlab __complete` the
// completion scripts call.
func TestCompletionDynamic(t *testing.T) {
	e := newEnv(t)
	e.createGuest("runner", guests["x86_64"], nil, "--display", "none", "--net", "none")
	e.createGuest("sleeper", guests["x86_64"], nil, "--display", "none", "--net", "none", "--disk", "32M")
	e.ok("snapshot", "create", "sleeper", "clean-one")
	e.ok("net", "lab", "create", "lab-x")
	e.ok("start", "runner")
	want := func(args []string, has, hasNot []string) {
		t.Helper()
		got := e.completions(args...)
		for _, h := range has {
			if !slices.Contains(got, h) {
				t.Errorf("vlab __complete %q = %q, want %q in it", args, got, h)
			}
		}
		for _, h := range hasNot {
			if slices.Contains(got, h) {
				t.Errorf("vlab __complete %q = %q, want no %q", args, got, h)
			}
		}
	}
	want([]string{"start", ""}, []string{"sleeper"}, []string{"runner"})
	want([]string{"stop", ""}, []string{"runner"}, []string{"sleeper"})
	want([]string{"pause", ""}, []string{"runner"}, []string{"sleeper"})
	want([]string{"show", ""}, []string{"runner", "sleeper"}, nil)
	want([]string{"snapshot", "restore", "sleeper", ""}, []string{"clean-one"}, []string{"sleeper"})
	want([]string{"create", "x", "--profile", ""}, []string{"win98", "debian", "macos9"}, nil)
	want([]string{"create", "x", "--arch", ""}, []string{"x86_64", "aarch64", "ppc64"}, nil)
	want([]string{"net", "lab", "rm", ""}, []string{"lab-x"}, nil)
	want([]string{"snapshot", "cr"}, []string{"create"}, []string{"list"})

	// The debugging and guest tools name a VM first.
	want([]string{"debug", ""}, []string{"runner", "sleeper"}, nil) // debug starts a stopped VM
	want([]string{"monitor", ""}, []string{"runner"}, []string{"sleeper"})
	want([]string{"trace", ""}, []string{"runner"}, []string{"sleeper"})
	want([]string{"replay", ""}, []string{"runner", "sleeper"}, nil)
	want([]string{"ssh", ""}, []string{"runner"}, []string{"sleeper"})
	want([]string{"exec", ""}, []string{"runner"}, []string{"sleeper"})
	want([]string{"export", ""}, []string{"sleeper"}, []string{"runner"}) // export needs a stopped VM
	want([]string{"export", "sleeper", "out.ova", "--format", ""}, []string{"ova", "ovf"}, []string{"qcow2"})
	// cp: either side may be NAME:PATH; a word without a colon offers the
	// running VMs as "NAME:" (no space after, the path follows).
	want([]string{"cp", ""}, []string{"runner:"}, []string{"sleeper:", "runner"})
	want([]string{"cp", "./f", "ru"}, []string{"runner:"}, nil)
	want([]string{"cp", "runner:/etc/hostname", ""}, nil, []string{"runner:"}) // the other side is the host's
	if d := e.completionDirective("cp", "./f", "ru"); d&2 == 0 {
		t.Errorf("vlab __complete cp ./f ru: directive %d, want NoSpace (2) set", d)
	}
	// import takes a file: the shell completes paths.
	if got := e.completions("import", ""); len(got) != 0 {
		t.Errorf("vlab __complete import \"\" = %q, want no candidates (files)", got)
	}
	if d := e.completionDirective("import", ""); d&4 != 0 {
		t.Errorf("vlab __complete import \"\": directive %d offers no files", d)
	}

	// --machine: the machine types the installed QEMU lists for the
	// guest's arch (from the cached host probe), vlab's families first.
	want([]string{"create", "x", "--machine", ""}, []string{"q35", "pc"}, []string{"virt", "pseries"})
	if got := e.completions("create", "x", "--machine", ""); !slices.ContainsFunc(got, func(m string) bool { return strings.HasPrefix(m, "pc-q35-") }) {
		t.Errorf("vlab __complete create x --machine \"\" = %q, want the installed QEMU's versioned pc-q35-* types", got)
	}
	want([]string{"create", "x", "--arch", "aarch64", "--machine", ""}, []string{"virt"}, []string{"q35", "pc"})
	want([]string{"create", "x", "--profile", "macos9", "--machine", ""}, []string{"mac99"}, []string{"q35"})
	want([]string{"edit", "sleeper", "--machine", ""}, []string{"q35", "pc"}, []string{"virt"})
	// --image: the gallery's cloud images for the arch (an http URL or a
	// file also works, so files stay on).
	want([]string{"create", "x", "--image", ""}, []string{"debian-12", "ubuntu-24.04"}, []string{"debian-12-netinst"})
	if d := e.completionDirective("create", "x", "--image", ""); d&4 != 0 {
		t.Errorf("vlab __complete create x --image \"\": directive %d offers no files (an image file is valid)", d)
	}
}
