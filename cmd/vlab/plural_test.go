package main

import "testing"

func TestCount(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{0, "0 CPUs"}, {1, "1 CPU"}, {2, "2 CPUs"}} {
		if got := count(c.n, "CPU", "CPUs"); got != c.want {
			t.Errorf("count(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
