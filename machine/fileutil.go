package machine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// writeFileAtomic writes data to path through a temp file in the same
// directory and a rename, so readers see the old or the new file, never half.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, data, perm, true)
}

// writeRecordAtomic is writeFileAtomic without the fsync, for runtime
// records that describe a running process and die with it at a reboot: the
// rename keeps them whole, and the start path skips a disk flush.
func writeRecordAtomic(path string, data []byte) error {
	return writeAtomic(path, data, 0o600, false)
}

func writeAtomic(path string, data []byte, perm os.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	renamed = true
	if durable {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// syncFile flushes the file at path to the disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// syncDir flushes folder dir's entries (names created, renamed or removed
// in it) to the disk: a rename is durable only once its folder is synced.
func syncDir(dir string) error { return syncFile(dir) }

// syncTree flushes every file and folder under dir, dir included, so that a
// folder built under a temporary name is whole on disk before a rename
// makes it visible.
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Type().IsRegular() {
			return syncFile(path)
		}
		return nil
	})
}

// renameDurable renames from to to and syncs the folder(s) involved.
func renameDurable(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(to)); err != nil {
		return err
	}
	if filepath.Dir(from) != filepath.Dir(to) {
		return syncDir(filepath.Dir(from))
	}
	return nil
}

// fileLock is an exclusive flock on one file. The kernel drops it when the
// process dies, so a killed vlab never leaves a VM locked.
type fileLock struct{ f *os.File }

// errLocked is returned by tryLock when another process holds the lock.
var errLocked = errors.New("locked by another vlab process")

func openLockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	return f, nil
}

// lock takes the lock, waiting until ctx ends.
func lock(ctx context.Context, path string) (*fileLock, error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	delay := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return &fileLock{f}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w (%w)", path, errLocked, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// tryLock takes the lock or returns errLocked at once.
func tryLock(path string) (*fileLock, error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &fileLock{f}, nil
}

func (l *fileLock) unlock() {
	if l != nil && l.f != nil {
		l.f.Close() // closing drops the flock
		l.f = nil
	}
}

// runCmd runs a helper program (qemu-img) with argv, never through a shell,
// and returns its combined output.
func runCmd(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out) + " " + err.Error(), err
	}
	return string(out), nil
}

// ErrNoSpace means the file system of the library is full.
var ErrNoSpace = errors.New("no space left on device")

// noSpace turns err into a one-line ErrNoSpace error for operation op when
// it was caused by a full file system (ENOSPC, or a helper such as qemu-img
// saying so), naming the folder, what is free there and, when known (need >
// 0), about how much the operation needed. Other errors pass unchanged.
func noSpace(op string, err error, dir string, need int64) error {
	if err == nil || errors.Is(err, ErrNoSpace) {
		return err
	}
	if !errors.Is(err, syscall.ENOSPC) && !strings.Contains(err.Error(), "No space left on device") {
		return err
	}
	free := ""
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) == nil {
		free = fmt.Sprintf(", %s free", Size(int64(st.Bavail)*st.Bsize).Human())
	}
	if need > 0 {
		free += fmt.Sprintf(", about %s needed", Size(need).Human())
	}
	return fmt.Errorf("%s: %w in %s%s: free some space there (or move the library with XDG_DATA_HOME) and retry", op, ErrNoSpace, dir, free)
}
