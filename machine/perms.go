package machine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// Every folder vlab makes is 0700 and every file 0600, whatever the umask:
// disks, logs (a serial log holds what was typed at a login prompt) and
// machine.toml are the owner's alone. Files that qemu-img or QEMU create
// for vlab get the same modes right after they appear (and are born in
// 0700 folders, so no one else can open them meanwhile).
const (
	privateDirMode  fs.FileMode = 0o700
	privateFileMode fs.FileMode = 0o600
)

// privateFile makes a file vlab (or qemu-img for vlab) just created
// owner-only.
func privateFile(path string) error {
	if err := os.Chmod(path, privateFileMode); err != nil {
		return fmt.Errorf("make %s private: %w", path, err)
	}
	return nil
}

// mkdirPrivate creates dir and its missing parents with mode 0700 and
// makes dir itself 0700 whatever the umask.
func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, privateDirMode); err != nil {
		return err
	}
	return os.Chmod(dir, privateDirMode)
}

// touchPrivate creates path as an empty owner-only file when it is missing,
// and takes group and world bits off an existing one: QEMU then appends to
// it (a chardev logfile) without choosing its mode.
func touchPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, privateFileMode)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(fi.Mode().Perm() &^ 0o077); err != nil {
			return fmt.Errorf("make %s private: %w", path, err)
		}
	}
	return nil
}

// PermProblem is a file or folder in vlab's directories that others may
// read, write or enter.
type PermProblem struct {
	Path  string
	Mode  fs.FileMode // the permission bits found
	Want  fs.FileMode // what vlab makes it
	Fixed bool        // FixPermissions changed it
	Err   error       // why fixing it failed
}

// roots are the folders vlab owns, in the order they are checked.
func (d Dirs) roots() []string {
	var out []string
	for _, r := range []string{d.Config, d.Data, d.State, d.Cache, d.Runtime} {
		if r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// CheckPermissions lists every folder and regular file under vlab's own
// directories (config, library, state, cache, runtime) that is group- or
// world-accessible. Symbolic links are reported nowhere and never followed:
// a link planted in the library does not lead the walk (or a fix) outside.
func (s *Store) CheckPermissions() ([]PermProblem, error) {
	return walkPermissions(s.dirs.roots(), false)
}

// FixPermissions is CheckPermissions that also takes the group and world
// bits off each problem it finds (folders become 0700, files lose their
// group/world bits: 0644 becomes 0600, a read-only base image 0444 becomes
// 0400). It changes a file only through a descriptor opened without
// following links, so a path swapped for a link is left alone.
func (s *Store) FixPermissions() ([]PermProblem, error) {
	return walkPermissions(s.dirs.roots(), true)
}

func walkPermissions(roots []string, fix bool) ([]PermProblem, error) {
	var out []PermProblem
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				if d != nil && d.IsDir() {
					return fs.SkipDir // unreadable: report it below if we can stat it
				}
				return nil
			}
			t := d.Type()
			if !t.IsDir() && !t.IsRegular() {
				return nil // links, sockets (in the 0700 runtime dir), fifos
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			perm := fi.Mode().Perm()
			if perm&0o077 == 0 {
				return nil
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && t.IsRegular() && st.Nlink > 1 {
				// A hard link to a file elsewhere (an ISO added to the
				// library shares the user's own file): its mode is that
				// file's, which vlab does not own; the 0700 folder keeps
				// others out of this path.
				return nil
			}
			want := perm &^ 0o077
			if t.IsDir() {
				want = privateDirMode
			}
			p := PermProblem{Path: path, Mode: perm, Want: want}
			if fix {
				p.Err = chmodNoFollow(path, t.IsDir(), want)
				p.Fixed = p.Err == nil
			}
			out = append(out, p)
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("check permissions under %s: %w", root, err)
		}
	}
	return out, nil
}

// chmodNoFollow sets mode on path through a descriptor opened with
// O_NOFOLLOW (and O_NONBLOCK, so nothing blocks), after checking it still is
// a folder or regular file.
func chmodNoFollow(path string, dir bool, mode fs.FileMode) error {
	flags := os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if dir {
		flags |= syscall.O_DIRECTORY
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return fmt.Errorf("fix %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("fix %s: %w", path, err)
	}
	if fi.IsDir() != dir || (!dir && !fi.Mode().IsRegular()) {
		return fmt.Errorf("fix %s: it changed while being fixed: run again", path)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("fix %s: %w", path, err)
	}
	return nil
}
