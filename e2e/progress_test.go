package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"vlab/internal/fixture"
)

// TestProgressOnCLI: the long operations without progress before (issue
// 16) report it on stderr through the shared bar: a line per 10% when
// stderr is not a terminal, as here. stdout stays the one JSON object.
func TestProgressOnCLI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	name := "prog"
	e.createGuest(name, guests["x86_64"], nil, "--display", "none", "--net", "none", "--disk", "32M")
	e.ok("start", name)
	e.waitSerial(name, fixture.MarkerBootOK)

	step := func(wantLabel string, args ...string) {
		t.Helper()
		out, errs, code := e.run(args...)
		if code != 0 {
			t.Fatalf("vlab %s: exit %d: %s", strings.Join(args, " "), code, errs)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Errorf("vlab %s: stdout is not one JSON object (%v): %q", strings.Join(args, " "), err, out)
		}
		t.Logf("vlab %s: stderr:\n%s", strings.Join(args, " "), errs)
		var last string
		for _, l := range strings.Split(strings.TrimSpace(errs), "\n") {
			if strings.HasPrefix(l, wantLabel) {
				last = l
			}
		}
		if !strings.Contains(last, "100%") {
			t.Errorf("vlab %s: stderr %q; want progress lines %q ending at 100%%", strings.Join(args, " "), errs, wantLabel)
		}
	}
	step("saving snapshot", "snapshot", "create", name, "p1", "--json")
	step("loading snapshot", "snapshot", "restore", name, "p1", "--yes", "--json")
	e.ok("stop", "--force", name)
	step("adding", "iso", "add", isoFixture(t, "installer-x86_64.iso"), "--json")
}
