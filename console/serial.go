package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// DetachKey is the byte that leaves an attached serial console: Ctrl-],
// as in telnet.
const DetachKey = 0x1d

// DetachHint says how to leave, for the line printed before attaching.
const DetachHint = "Ctrl-]"

// ErrSerialBusy means another vlab client holds the VM's serial console:
// QEMU's serial socket serves one client at a time.
var ErrSerialBusy = errors.New("serial console is in use by another vlab client")

// Serial is an attached serial console.
type Serial struct {
	net.Conn
	lock *os.File
}

// Close detaches: it closes the connection and releases the claim. The guest
// and QEMU keep running.
func (s *Serial) Close() error {
	err := s.Conn.Close()
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

// AttachSerial connects to a VM's serial socket. It claims the console with
// a lock file beside the socket (sock+".lock") so two clients never fight
// over QEMU's single connection, and waits (until ctx ends) for a socket
// that does not exist yet, so attaching to a VM that is still starting works.
func AttachSerial(ctx context.Context, sock string) (*Serial, error) {
	lf, err := os.OpenFile(sock+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("attach serial %s: %w", sock, err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("attach serial %s: %w", sock, ErrSerialBusy)
		}
		return nil, fmt.Errorf("attach serial %s: %w", sock, err)
	}
	var d net.Dialer
	delay := 5 * time.Millisecond
	for {
		c, err := d.DialContext(ctx, "unix", sock)
		if err == nil {
			return &Serial{Conn: c, lock: lf}, nil
		}
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
			lf.Close()
			return nil, fmt.Errorf("attach serial %s: %w", sock, err)
		}
		select {
		case <-ctx.Done():
			lf.Close()
			return nil, fmt.Errorf("attach serial %s: the vm is not running (%w)", sock, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// Pump copies between a user and an attached console until the user types
// DetachKey (when detachable), the user's input ends, or the guest side
// closes. It returns nil on a detach or end of input.
func Pump(ctx context.Context, conn io.ReadWriter, in io.Reader, out io.Writer, detachable bool) error {
	errc := make(chan error, 2)
	go func() {
		_, err := io.Copy(out, conn)
		errc <- err
	}()
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := in.Read(buf)
			if n > 0 {
				chunk := buf[:n]
				if detachable {
					for i, b := range chunk {
						if b == DetachKey {
							if i > 0 {
								conn.Write(chunk[:i])
							}
							errc <- nil
							return
						}
					}
				}
				if _, werr := conn.Write(chunk); werr != nil {
					errc <- werr
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				errc <- err
				return
			}
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
}
