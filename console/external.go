package console

import (
	"context"
	"crypto/des"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Target is where an external viewer connects: the VM's VNC unix socket,
// or a loopback endpoint with a one-time password.
type Target struct {
	Socket   string // unix socket (viewers that can use one)
	Host     string // TCP endpoint (127.0.0.1) for the others
	Port     int
	Password string
	Title    string // window title (the VM name)
}

// ExternalViewer is a VNC viewer program vlab can start.
type ExternalViewer struct {
	Name string   // "vncviewer", "remote-viewer", "gvncviewer" or "configured"
	Path string   // the program
	args []string // argument templates, see FindViewer
	unix bool     // connects to the unix socket itself
}

// UsesSocket says whether the viewer connects to the VM's unix socket
// directly; otherwise it needs a loopback Endpoint.
func (e *ExternalViewer) UsesSocket() bool { return e.unix }

// errPasswordInArgv refuses a viewer command that would put the password
// in the viewer's arguments.
var errPasswordInArgv = errors.New("viewer command uses {password}, which shows the password to every local user in ps: use {passwordfile} (a vncpasswd file, e.g. vncviewer -passwd {passwordfile} {host}::{port})")

// ErrNoViewer is returned (wrapped) by FindViewer when no external viewer
// is installed or configured.
var ErrNoViewer = errors.New("no external vnc viewer found")

// knownViewers are the viewers vlab looks for, best first. TigerVNC's
// vncviewer (1.11 and later) and remote-viewer take a unix socket; vlab
// asks both for a shared session (QEMU's default share policy drops every
// other client when one asks for exclusive access).
var knownViewers = []ExternalViewer{
	{Name: "vncviewer", args: []string{"-Shared=1", "{socket}"}, unix: true},
	{Name: "remote-viewer", args: []string{"--title", "{title}", "vnc+unix://{socket}"}, unix: true},
	{Name: "gvncviewer", args: []string{"{host}:{display}"}},
}

// FindViewer returns the external viewer to start. command is the one the
// user configured ("" = look for a known one): a command line whose words
// may contain {socket} (the VM's VNC unix socket), or {host}, {port},
// {display} (port-5900) and {passwordfile} (a vncpasswd-format file, mode
// 0600) for a loopback endpoint, and {title}. A command without {socket}
// gets an endpoint. {password} is refused: every local user can read a
// process's arguments (ps), so the password never goes there.
func FindViewer(command string) (*ExternalViewer, error) {
	if strings.TrimSpace(command) != "" {
		if strings.Contains(command, "{password}") {
			return nil, errPasswordInArgv
		}
		words := strings.Fields(command)
		path, err := exec.LookPath(words[0])
		if err != nil {
			return nil, fmt.Errorf("configured vnc viewer %q: %w", words[0], err)
		}
		return &ExternalViewer{Name: "configured", Path: path, args: words[1:], unix: strings.Contains(command, "{socket}")}, nil
	}
	for _, k := range knownViewers {
		path, err := exec.LookPath(k.Name)
		if err != nil {
			continue
		}
		v := k
		v.Path = path
		if v.Name == "vncviewer" && !tigerUnix(path) {
			// Another vncviewer (TightVNC, RealVNC): TCP with a password file.
			v.args, v.unix = []string{"-shared", "-passwd", "{passwordfile}", "{host}::{port}"}, false
		}
		return &v, nil
	}
	return nil, fmt.Errorf("%w: install one (apt-get install tigervnc-viewer) or set viewer in config.toml", ErrNoViewer)
}

// tigerUnix says whether a vncviewer takes a unix socket path (TigerVNC
// 1.11 and later list "[unix socket]" in their usage).
func tigerUnix(path string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "-h").CombinedOutput()
	return strings.Contains(string(out), "unix socket")
}

// Command returns the viewer's command for t. A password file it needs is
// created in dir (mode 0600); cleanup removes it.
func (e *ExternalViewer) Command(t Target, dir string) (cmd *exec.Cmd, cleanup func(), err error) {
	cleanup = func() {}
	var pwFile string
	args := make([]string, 0, len(e.args))
	for _, a := range e.args {
		if strings.Contains(a, "{password}") {
			return nil, cleanup, errPasswordInArgv
		}
		if strings.Contains(a, "{passwordfile}") && pwFile == "" {
			f, err := os.CreateTemp(dir, "vlab-vncpasswd-")
			if err != nil {
				return nil, cleanup, fmt.Errorf("viewer password file: %w", err)
			}
			pwFile = f.Name()
			cleanup = func() { os.Remove(pwFile) }
			_, werr := f.Write(ObfuscatePassword(t.Password))
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				cleanup()
				return nil, func() {}, fmt.Errorf("viewer password file: %w", werr)
			}
		}
		args = append(args, expand(a, t, pwFile))
	}
	return exec.Command(e.Path, args...), cleanup, nil
}

func expand(s string, t Target, pwFile string) string {
	return strings.NewReplacer(
		"{socket}", t.Socket,
		"{host}", t.Host,
		"{port}", strconv.Itoa(t.Port),
		"{display}", strconv.Itoa(t.Port-5900),
		"{passwordfile}", pwFile,
		"{title}", t.Title,
	).Replace(s)
}

// reverseBits mirrors a byte: VNC uses DES keys with each byte's bits in
// the opposite order to the standard.
func reverseBits(b byte) byte {
	var r byte
	for i := 0; i < 8; i++ {
		r = r<<1 | b&1
		b >>= 1
	}
	return r
}

// vncDES encrypts one 8-byte block with key as VNC does (RFC 6143 §7.2.2).
func vncDES(key, block []byte) []byte {
	var k [8]byte
	for i := 0; i < len(key) && i < 8; i++ {
		k[i] = reverseBits(key[i])
	}
	c, _ := des.NewCipher(k[:]) // an 8-byte key never fails
	out := make([]byte, 8)
	c.Encrypt(out, block)
	return out
}

// ObfuscatePassword returns the 8 bytes of a vncpasswd file for password
// (what `vncviewer -passwd FILE` and `vncsnapshot -passwd FILE` read): the
// first 8 bytes of the password, DES-encrypted with VNC's fixed key.
func ObfuscatePassword(password string) []byte {
	var block [8]byte
	copy(block[:], password)
	return vncDES([]byte{23, 82, 107, 6, 35, 78, 88, 7}, block[:])
}

// NewPassword returns a random VNC password. VNC authentication uses 8
// characters at most; these are 8 letters and digits.
func NewPassword() (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 8)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", fmt.Errorf("new vnc password: %w", err)
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b), nil
}

// SetPasswordFunc sets the VNC password of the VM's password-protected
// display (QMP set_password). vlab calls it with a fresh password when an
// endpoint opens and with a random one nobody knows when it closes.
type SetPasswordFunc func(ctx context.Context, password string) error

// Endpoint is a TCP port on 127.0.0.1 for a VNC client that cannot use a
// unix socket. Each connection is relayed to the VM's password-protected
// VNC socket, so QEMU itself checks the one-time password (set through
// QMP) before showing anything. Nothing listens on another address.
type Endpoint struct {
	Host     string // always 127.0.0.1
	Port     int
	Password string

	ln     net.Listener
	sock   string
	setPw  SetPasswordFunc
	lease  *passwordLease
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	closed bool
}

// OpenEndpoint listens on a free loopback port; sock is the VM's
// password-protected VNC socket. The endpoint's one-time password is shared
// with the VM's other open endpoints through pwFile (mode 0600, in the VM's
// private runtime dir): the first sets a new one with setPassword, later
// ones reuse it, so opening a second endpoint never locks out the first
// one's viewer. Serve relays connections; Close ends the endpoint, and the
// last one to close makes the password useless.
func OpenEndpoint(ctx context.Context, sock, pwFile string, setPassword SetPasswordFunc) (*Endpoint, error) {
	if _, err := os.Stat(sock); err != nil {
		return nil, fmt.Errorf("vnc endpoint: %s: %w (the vm has no external vnc display: restart it with this vlab)", sock, err)
	}
	pw, lease, err := leasePassword(ctx, pwFile, setPassword)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		lease.release(func() error { return retirePassword(setPassword) })
		return nil, fmt.Errorf("vnc endpoint: listen on 127.0.0.1: %w", err)
	}
	return &Endpoint{
		Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Password: pw,
		ln: ln, sock: sock, setPw: setPassword, lease: lease, conns: make(map[net.Conn]struct{}),
	}, nil
}

// retirePassword replaces the display's password with a random one nobody
// knows.
func retirePassword(setPassword SetPasswordFunc) error {
	pw, err := NewPassword()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := setPassword(ctx, pw); err != nil {
		return fmt.Errorf("vnc endpoint: retire password: %w", err)
	}
	return nil
}

// Target returns the endpoint as a viewer target.
func (e *Endpoint) Target(title string) Target {
	return Target{Host: e.Host, Port: e.Port, Password: e.Password, Title: title}
}

// Serve relays connections until ctx ends or Close is called.
func (e *Endpoint) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { e.ln.Close() })
	defer stop()
	for {
		c, err := e.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("vnc endpoint: accept: %w", err)
		}
		if !e.track(c, true) {
			c.Close()
			return nil
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer e.track(c, false)
			e.relay(c)
		}()
	}
}

// track adds or removes a live connection; it refuses new ones once the
// endpoint is closed.
func (e *Endpoint) track(c net.Conn, add bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !add {
		delete(e.conns, c)
		return true
	}
	if e.closed {
		return false
	}
	e.conns[c] = struct{}{}
	return true
}

// relay copies between a TCP client and QEMU's socket until either ends.
func (e *Endpoint) relay(c net.Conn) {
	defer c.Close()
	q, err := net.Dial("unix", e.sock)
	if err != nil {
		return
	}
	defer q.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(q, c); done <- struct{}{} }()
	go func() { io.Copy(c, q); done <- struct{}{} }()
	<-done
}

// Close stops listening and drops the relayed connections; the last open
// endpoint of the VM also replaces the password with a random one nobody
// knows.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	err := e.ln.Close()
	e.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	if lerr := e.lease.release(func() error { return retirePassword(e.setPw) }); lerr != nil && err == nil {
		err = lerr
	}
	return err
}
