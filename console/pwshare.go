package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// One VM can have several endpoints open at once (two `vlab vnc --external`
// runs, say), all relaying to the same password-protected display, which has
// one password. So they share it: the first endpoint sets a fresh one-time
// password and writes it to a 0600 file in the VM's private runtime dir;
// each live endpoint holds a shared flock on that file; a later endpoint that
// finds the file held reuses the password instead of replacing it (which
// would lock out the first one's viewer); the last endpoint to close retires
// the password. A sibling ".lock" file serialises opening and closing. An
// endpoint that dies holds no lock any more, so the next one starts afresh;
// vlab removes the file when QEMU starts, so a new run starts afresh too.

// passwordLease is one endpoint's hold on the shared password.
type passwordLease struct {
	f     *os.File // the password file, flocked LOCK_SH while the endpoint lives
	mutex string
}

// lockMutex takes the exclusive lock that serialises lease changes.
func lockMutex(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// leasePassword returns the one-time password of the display behind
// pwFile's endpoints: the one the live endpoints use, or a fresh one set
// with setPassword when there are none.
func leasePassword(ctx context.Context, pwFile string, setPassword SetPasswordFunc) (string, *passwordLease, error) {
	mutex := pwFile + ".lock"
	unlock, err := lockMutex(mutex)
	if err != nil {
		return "", nil, fmt.Errorf("vnc endpoint: lock %s: %w", mutex, err)
	}
	defer unlock()
	f, err := os.OpenFile(pwFile, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("vnc endpoint: password file: %w", err)
	}
	fail := func(err error) (string, *passwordLease, error) {
		f.Close()
		return "", nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(fmt.Errorf("vnc endpoint: password file: %w", err))
	}
	fd := int(f.Fd())
	var pw string
	err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case errors.Is(err, syscall.EWOULDBLOCK):
		// Other endpoints are live: use their password.
		data, rerr := io.ReadAll(io.LimitReader(f, 64))
		if rerr != nil {
			return fail(fmt.Errorf("vnc endpoint: read the shared password: %w", rerr))
		}
		pw = strings.TrimSpace(string(data))
		if len(pw) != 8 {
			return fail(fmt.Errorf("vnc endpoint: %s holds no password while another endpoint is open: close the other `vlab vnc --external`", pwFile))
		}
	case err != nil:
		return fail(fmt.Errorf("vnc endpoint: lock %s: %w", pwFile, err))
	default:
		// No live endpoint: a fresh password.
		if pw, err = NewPassword(); err != nil {
			return fail(err)
		}
		if err := setPassword(ctx, pw); err != nil {
			return fail(fmt.Errorf("vnc endpoint: set one-time password: %w", err))
		}
		if err := writeAll(f, pw); err != nil {
			return fail(fmt.Errorf("vnc endpoint: password file: %w", err))
		}
	}
	if err := syscall.Flock(fd, syscall.LOCK_SH); err != nil {
		return fail(fmt.Errorf("vnc endpoint: lock %s: %w", pwFile, err))
	}
	return pw, &passwordLease{f: f, mutex: mutex}, nil
}

// writeAll replaces f's content with s and syncs it.
func writeAll(f *os.File, s string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(s), 0); err != nil {
		return err
	}
	return f.Sync()
}

// release ends the lease; the last endpoint replaces the password with a
// random one nobody knows (retire) and empties the file.
func (l *passwordLease) release(retire func() error) error {
	defer l.f.Close()
	unlock, err := lockMutex(l.mutex)
	if err != nil {
		return fmt.Errorf("vnc endpoint: lock %s: %w", l.mutex, err)
	}
	defer unlock()
	// A file that is no longer at its path belongs to an earlier run of the
	// VM (vlab removes it when QEMU starts): its password died with that
	// QEMU, and retiring now would hit the new run's password.
	mine, err1 := l.f.Stat()
	now, err2 := os.Stat(l.f.Name())
	if err1 != nil || err2 != nil || !os.SameFile(mine, now) {
		return nil
	}
	// Upgrading fails while another endpoint holds its shared lock (ours
	// may be gone then: it does not matter, we are leaving).
	if err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil
		}
		return fmt.Errorf("vnc endpoint: lock %s: %w", l.f.Name(), err)
	}
	rerr := retire()
	if err := writeAll(l.f, ""); err != nil && rerr == nil {
		rerr = fmt.Errorf("vnc endpoint: password file: %w", err)
	}
	return rerr
}
