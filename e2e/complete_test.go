package e2e

import (
	"slices"
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
}
