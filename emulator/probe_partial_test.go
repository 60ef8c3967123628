package emulator

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestProbeCachedSkipsIncomplete: when a binary's `-machine help` fails or
// times out, the probe's machine list is incomplete; ProbeCached must not
// keep it (neither in the file nor in memory), or every later vlab would
// reject valid machine types until the binary changed.
func TestProbeCachedSkipsIncomplete(t *testing.T) {
	for _, c := range []struct{ name, sleep string }{{"fails", "0"}, {"times out", "5"}} {
		t.Run(c.name, func(t *testing.T) {
			old := probeTimeout
			probeTimeout = time.Second
			t.Cleanup(func() { probeTimeout = old })
			f := newFakeHost(t, ArchX86_64)
			cache := filepath.Join(f.dir, "cache", "host.json")
			flag := f.write(t, "fail-machine", c.sleep)
			ctx := testCtxProbe(t)
			h, err := f.p.probeCached(ctx, cache)
			if err != nil {
				t.Fatal(err)
			}
			if len(h.Binaries[ArchX86_64].Machines) != 0 {
				t.Fatalf("the fake's -machine help did not fail: %v", h.Binaries[ArchX86_64].Machines)
			}
			if _, err := os.Stat(cache); err == nil {
				t.Error("an incomplete probe was written to the cache file")
			}
			os.Remove(flag)
			h, err = f.p.probeCached(ctx, cache)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(h.Binaries[ArchX86_64].Machines, "q35") {
				t.Errorf("after -machine help works again the probe still lacks q35: %v", h.Binaries[ArchX86_64].Machines)
			}
			if _, err := os.Stat(cache); err != nil {
				t.Errorf("a complete probe was not cached: %v", err)
			}
		})
	}
}
