package machine

import (
	"path/filepath"
	"testing"
)

// emptyStore opens a Store whose every folder is under a temp dir whose path
// has spaces, as a user's may.
func emptyStore(t *testing.T) *Store {
	t.Helper()
	root := filepath.Join(t.TempDir(), "a home")
	s, err := Open(Dirs{
		Config:  filepath.Join(root, "config"),
		Data:    filepath.Join(root, "data"),
		Runtime: filepath.Join(root, "run"),
		State:   filepath.Join(root, "state"),
		Cache:   filepath.Join(root, "cache"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
