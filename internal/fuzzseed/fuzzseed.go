// Package fuzzseed gives vlab's fuzz targets their seed corpora: each seed
// is added to the fuzz target and, with VLAB_FUZZ_SEEDS=write in the
// environment, also written to the package's testdata/fuzz/FuzzXxx/ in Go's
// corpus file format, so the corpus kept in the repository is regenerated
// from the same valid messages the code builds.
package fuzzseed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Add adds each seed (the fuzz function's arguments, in order) to f, and
// writes them as seed-NN files when VLAB_FUZZ_SEEDS=write. Supported
// argument types: []byte, string, int64, uint8, bool.
func Add(f *testing.F, seeds ...[]any) {
	f.Helper()
	write := os.Getenv("VLAB_FUZZ_SEEDS") == "write"
	dir := filepath.Join("testdata", "fuzz", f.Name())
	if write {
		// Seed files are source files committed to the repository, not
		// user data: they get a checkout's usual modes.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for i, s := range seeds {
		f.Add(s...)
		if !write {
			continue
		}
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range s {
			switch v := v.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case string:
				fmt.Fprintf(&b, "string(%q)\n", v)
			case int64:
				fmt.Fprintf(&b, "int64(%d)\n", v)
			case uint8:
				fmt.Fprintf(&b, "byte(%d)\n", v)
			case bool:
				fmt.Fprintf(&b, "bool(%v)\n", v)
			default:
				f.Fatalf("fuzzseed: unsupported seed type %T", v)
			}
		}
		name := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
			f.Fatal(err)
		}
	}
}
