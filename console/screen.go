package console

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// dialTimeout bounds connecting to a VM's VNC socket, handshake included.
const dialTimeout = 15 * time.Second

// Screen is a VM's graphical console as viewers reach it. The caller fills
// it from the library (machine.VNCDisplay); every path is in the VM's
// private runtime folder.
type Screen struct {
	// Title names what is shown (the VM): window titles, the status line.
	Title string
	// Socket is QEMU's VNC unix socket without a password.
	Socket string
	// Protected is the password-protected display's socket that loopback
	// endpoints relay to.
	Protected string
	// PasswordFile is where the open endpoints share the one-time password
	// (0600; see OpenEndpoint).
	PasswordFile string
	// Dir is a private folder for an external viewer's password file.
	Dir string
	// SetPassword sets the protected display's password.
	SetPassword SetPasswordFunc
}

// View shows the screen on the terminal in/out with the built-in Viewer,
// drawn as g says, until the user leaves (nil) or the session ends
// (ErrSessionEnded, wrapped). Connecting is bounded by 15 seconds; ctx
// bounds only that.
func (s Screen) View(ctx context.Context, g Graphics, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	v, err := DialVNC(ctx, s.Socket, VNCOptions{})
	cancel()
	if err != nil {
		return err
	}
	defer v.Close()
	vw := &Viewer{VNC: v, Title: s.Title, Graphics: g}
	vw.SetStdin(in)
	vw.SetStdout(out)
	return vw.Run()
}

// OpenEndpoint opens a loopback endpoint for the screen's password-protected
// display (see the package function OpenEndpoint). The caller runs Serve and
// closes it.
func (s Screen) OpenEndpoint(ctx context.Context) (*Endpoint, error) {
	return OpenEndpoint(ctx, s.Protected, s.PasswordFile, s.SetPassword)
}

// GraphicalSession says whether an external viewer has a screen to open on
// (DISPLAY or WAYLAND_DISPLAY is set).
func GraphicalSession() bool {
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}

// ExternalSession is an external viewer showing a Screen.
type ExternalSession struct {
	// Endpoint is the loopback endpoint the viewer connects to, nil when
	// the viewer takes the unix socket.
	Endpoint *Endpoint

	name    string
	cmd     *exec.Cmd
	cleanup func()
	log     tailBuffer
	waited  chan error
}

// Start starts viewer e on screen s: on its unix socket when e takes one,
// else on a loopback endpoint opened for it (serving until ctx ends or the
// session's Wait returns). A password file the viewer reads is created in
// s.Dir (0600) and removed by Wait.
func (e *ExternalViewer) Start(ctx context.Context, s Screen) (*ExternalSession, error) {
	x := &ExternalSession{name: e.Name, waited: make(chan error, 1)}
	target := Target{Socket: s.Socket, Title: s.Title}
	if !e.UsesSocket() {
		ep, err := s.OpenEndpoint(ctx)
		if err != nil {
			return nil, err
		}
		go ep.Serve(ctx)
		x.Endpoint, target = ep, ep.Target(s.Title)
	}
	c, cleanup, err := e.Command(target, s.Dir)
	if err != nil {
		x.close()
		return nil, err
	}
	x.cmd, x.cleanup = c, cleanup
	// Viewers log chattily: keep the tail for an error message.
	c.Stdout, c.Stderr = &x.log, &x.log
	if err := c.Start(); err != nil {
		x.close()
		return nil, fmt.Errorf("start %s: %w", e.Name, err)
	}
	go func() { x.waited <- c.Wait() }()
	return x, nil
}

// Wait returns when the viewer exits, with an error (carrying the end of its
// output) when it failed. When ctx ends first the viewer is interrupted and
// Wait returns nil once it has exited. Either way the endpoint closes and
// the viewer's password file goes.
func (x *ExternalSession) Wait(ctx context.Context) error {
	defer x.close()
	select {
	case err := <-x.waited:
		if err != nil {
			return fmt.Errorf("%s: %w: %s", x.name, err, oneLine(x.log.String()))
		}
		return nil
	case <-ctx.Done():
		_ = x.cmd.Process.Signal(os.Interrupt)
		<-x.waited
		return nil
	}
}

// close removes the viewer's password file and closes the endpoint.
func (x *ExternalSession) close() {
	if x.cleanup != nil {
		x.cleanup()
	}
	if x.Endpoint != nil {
		x.Endpoint.Close()
	}
}

// tailBuffer keeps the last 300 bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 300 {
		t.buf = t.buf[len(t.buf)-300:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// oneLine folds s onto one line: line breaks become "; ", runs of spaces
// one space.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
