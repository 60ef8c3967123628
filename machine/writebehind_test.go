package machine

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// openFDsTo counts this process's descriptors open on path.
func openFDsTo(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}

// TestWriteBehindFollowsAFileThatAppearsLater: writeBehind waits for the
// file the conversion creates, opens it once while it is being filled, and
// lets go of it when stopped, so a failed conversion's removed output
// leaves no open descriptor pinning its blocks.
func TestWriteBehindFollowsAFileThatAppearsLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.qcow2")
	stop := writeBehind(path)
	time.Sleep(2 * writeBehindEvery) // the file is not there yet
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for openFDsTo(t, path) < 2 { // ours and writeBehind's
		if time.Now().After(deadline) {
			stop()
			t.Fatal("writeBehind never opened the file being written")
		}
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
		time.Sleep(writeBehindEvery / 2)
	}
	stop()
	if n := openFDsTo(t, path); n != 1 {
		t.Errorf("%d descriptors on the file after stop, want only the writer's", n)
	}
}
