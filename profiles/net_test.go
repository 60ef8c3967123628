package profiles

import (
	"strings"
	"testing"

	"vlab/emulator"
)

// TestProfileNet: old, untrusted systems default to the sandbox network;
// a profile naming an unknown network is refused.
func TestProfileNet(t *testing.T) {
	for _, name := range []string{"freedos", "msdos622", "win95", "win98", "win2000", "winxp", "macos9", "macos9.0", "macosx10.4"} {
		p, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if p.Net != emulator.NetSandbox {
			t.Errorf("profile %s: net %q, want sandbox", name, p.Net)
		}
	}
	if p, err := Get("debian"); err != nil || p.Net != "" {
		t.Errorf("debian: net %q, %v: want user mode", p.Net, err)
	}
	p, _ := Get("win98")
	p.Net = "bridge"
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), `net "bridge" unknown`) {
		t.Errorf("a profile with net bridge: %v", err)
	}
}
