package main

import (
	"strings"
	"testing"
)

func BenchmarkViewIdle(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) { viewIdle(b, sz) })
	}
}

func BenchmarkFrameNavigate(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) { frameNavigate(b, sz) })
	}
}

func BenchmarkFrameRefresh(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) { frameRefresh(b, sz) })
	}
}

// TestBenchSetup checks the benchmark measures what it claims: 200
// machines, 10 running, a full screen, and refreshes that complete.
func TestBenchSetup(t *testing.T) {
	bn := newBench(t.Context(), benchVMs, benchRunning, 80, 24)
	out := bn.m.Render()
	for _, want := range []string{"200 machines", "10 running", "vm-000", "● running"} {
		if !strings.Contains(out, want) {
			t.Fatalf("screen lacks %q:\n%s", want, out)
		}
	}
	bn.refresh()
	if !strings.Contains(bn.m.Render(), "200 machines") {
		t.Fatal("the refresh lost the library")
	}
}
