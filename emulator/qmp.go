package emulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// QMPError is an error reply from QEMU.
type QMPError struct {
	Class string // QEMU's error class, e.g. "GenericError", "CommandNotFound"
	Desc  string // QEMU's human-readable description
}

// Error returns "qmp: <Desc> (<Class>)".
func (e *QMPError) Error() string { return "qmp: " + e.Desc + " (" + e.Class + ")" }

// Event is an asynchronous QMP event.
type Event struct {
	Name string          // e.g. "STOP", "RESUME", "SHUTDOWN", "JOB_STATUS_CHANGE"
	Data json.RawMessage // the event's "data" member; nil when it has none
	Time time.Time       // QEMU's timestamp of the event
}

// Greeting is what QEMU announces when a QMP client connects.
type Greeting struct {
	Major, Minor, Micro int      // QEMU version
	Package             string   // distribution package version, e.g. "Debian 1:7.2+dfsg-7+deb12u18"
	Capabilities        []string // protocol capabilities QEMU offers, e.g. "oob"
}

// Version returns the QEMU version as "major.minor.micro".
func (g Greeting) Version() string {
	return strconv.Itoa(g.Major) + "." + strconv.Itoa(g.Minor) + "." + strconv.Itoa(g.Micro)
}

// ErrMonitorClosed is returned (wrapped) by calls on a monitor whose
// connection has ended, and by calls that were pending when it ended.
var ErrMonitorClosed = errors.New("qmp: monitor closed")

// ErrMonitorsBusy is returned (wrapped) by DialAny when every QMP socket of a
// VM is held by another vlab process.
var ErrMonitorsBusy = errors.New("qmp: all monitor sockets are busy")

// closedError is why a monitor's connection ended; it matches ErrMonitorClosed.
type closedError struct{ cause error }

func (e *closedError) Error() string {
	if e.cause == nil {
		return ErrMonitorClosed.Error()
	}
	return ErrMonitorClosed.Error() + ": " + e.cause.Error()
}

func (e *closedError) Is(target error) bool { return target == ErrMonitorClosed }
func (e *closedError) Unwrap() error        { return e.cause }

const (
	// eventBuffer is how many undelivered events a monitor keeps; beyond it
	// the oldest are dropped (and counted) so replies are never stalled.
	eventBuffer = 1024
	// maxMessage bounds one QMP message, so a peer writing endless bytes
	// without a newline cannot exhaust memory.
	maxMessage = 64 << 20
	// otherSocketTimeout bounds how long DialAny waits for the greeting of a
	// socket that is not the last candidate (a non-vlab client may hold it,
	// and QEMU then leaves the connection unanswered in its backlog).
	otherSocketTimeout = 2 * time.Second
)

// Monitor is one QMP connection. Its methods are safe for concurrent use.
type Monitor struct {
	path     string
	conn     net.Conn
	rd       *bufio.Reader
	greeting Greeting

	writeMu sync.Mutex

	mu      sync.Mutex
	pending map[string]chan []byte // by canonical id; nil once the connection ended
	nextID  uint64

	events  chan Event
	dropped atomic.Uint64

	closing   atomic.Bool
	closeOnce sync.Once
	done      chan struct{}
	err       error // why the connection ended; set before done is closed

	lock *os.File // DialAny's lock file, released by Close
}

// Dial connects to a QMP unix socket, reads the greeting and negotiates
// capabilities (qmp_capabilities). ctx bounds the whole handshake: a server
// that never greets makes Dial return ctx's error with the connection closed.
func Dial(ctx context.Context, path string) (*Monitor, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: connect %s: %w", path, err)
	}
	m := &Monitor{
		path:    path,
		conn:    conn,
		rd:      bufio.NewReaderSize(conn, 64<<10),
		pending: make(map[string]chan []byte),
		events:  make(chan Event, eventBuffer),
		done:    make(chan struct{}),
	}
	// Interrupt blocked reads and writes when ctx ends during the handshake.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	herr := m.handshake()
	if !stop() || ctx.Err() != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp: handshake %s: %w", path, ctx.Err())
	}
	if herr != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp: handshake %s: %w", path, herr)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("qmp: handshake %s: %w", path, err)
	}
	go m.readLoop()
	return m, nil
}

// handshake reads the greeting and negotiates capabilities. It runs before
// the read loop starts, so it reads the connection directly.
func (m *Monitor) handshake() error {
	line, err := readMessage(m.rd)
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	var g struct {
		QMP *struct {
			Version struct {
				QEMU struct {
					Major, Minor, Micro int
				} `json:"qemu"`
				Package string `json:"package"`
			} `json:"version"`
			Capabilities []string `json:"capabilities"`
		} `json:"QMP"`
	}
	if err := json.Unmarshal(line, &g); err != nil || g.QMP == nil {
		return fmt.Errorf("not a QMP greeting: %.80q", line)
	}
	v := g.QMP.Version
	m.greeting = Greeting{
		Major: v.QEMU.Major, Minor: v.QEMU.Minor, Micro: v.QEMU.Micro,
		Package:      strings.TrimSpace(v.Package),
		Capabilities: g.QMP.Capabilities,
	}
	const capID = `"vlab-cap"`
	if _, err := m.conn.Write([]byte(`{"execute":"qmp_capabilities","id":` + capID + "}\n")); err != nil {
		return fmt.Errorf("negotiate capabilities: %w", err)
	}
	for {
		line, err := readMessage(m.rd)
		if err != nil {
			return fmt.Errorf("negotiate capabilities: %w", err)
		}
		var msg map[string]json.RawMessage
		if err := json.Unmarshal(line, &msg); err != nil {
			return fmt.Errorf("negotiate capabilities: invalid message %.80q", line)
		}
		if _, ok := msg["event"]; ok {
			m.pushEvent(msg)
			continue
		}
		if !isReply(msg) {
			continue
		}
		if id, ok := msg["id"]; ok && canonicalID(id) != capID {
			continue
		}
		if qe := replyError(msg); qe != nil {
			return fmt.Errorf("negotiate capabilities: %w", qe)
		}
		return nil
	}
}

// readMessage returns the next non-empty line (one QMP message), without
// its line ending. The returned slice is owned by the caller.
func readMessage(r *bufio.Reader) ([]byte, error) {
	for {
		var buf []byte
		for {
			chunk, err := r.ReadSlice('\n')
			buf = append(buf, chunk...)
			if len(buf) > maxMessage {
				return nil, fmt.Errorf("message longer than %d bytes", maxMessage)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				if err == io.EOF && len(bytes.TrimSpace(buf)) > 0 {
					err = io.ErrUnexpectedEOF
				}
				return nil, err
			}
			break
		}
		if line := bytes.TrimSpace(buf); len(line) > 0 {
			return line, nil
		}
	}
}

func isReply(msg map[string]json.RawMessage) bool {
	_, ret := msg["return"]
	_, qerr := msg["error"]
	return ret || qerr
}

// replyError returns the reply's error member as a *QMPError, or nil.
func replyError(msg map[string]json.RawMessage) *QMPError {
	raw, ok := msg["error"]
	if !ok {
		return nil
	}
	var e struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return &QMPError{Class: "GenericError", Desc: "malformed error reply: " + string(raw)}
	}
	return &QMPError{Class: e.Class, Desc: e.Desc}
}

// canonicalID is the key a request id is correlated by: QEMU parses the id
// and serializes it again, so compare values, not bytes.
func canonicalID(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return string(raw)
	}
	return string(b)
}

func (m *Monitor) readLoop() {
	var err error
	for {
		var line []byte
		line, err = readMessage(m.rd)
		if err != nil {
			break
		}
		if err = m.dispatch(line); err != nil {
			break
		}
	}
	m.conn.Close()
	if m.closing.Load() {
		err = nil
	} else if err == io.EOF {
		err = errors.New("connection closed by qemu")
	}
	m.mu.Lock()
	m.err = &closedError{cause: err}
	m.pending = nil
	m.mu.Unlock()
	close(m.events)
	close(m.done)
}

// dispatch routes one message: events to the event stream, replies to the
// Execute waiting for their id. Anything that is not a JSON object is a
// protocol error that ends the connection.
func (m *Monitor) dispatch(line []byte) error {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(line, &msg); err != nil || msg == nil {
		return fmt.Errorf("invalid message from qemu: %.80q", line)
	}
	if _, ok := msg["event"]; ok {
		m.pushEvent(msg)
		return nil
	}
	if !isReply(msg) {
		return nil // e.g. a repeated greeting; nothing waits for it
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var ch chan []byte
	if id, ok := msg["id"]; ok {
		key := canonicalID(id)
		ch = m.pending[key]
		delete(m.pending, key)
	} else if len(m.pending) == 1 {
		// QEMU drops the id only when it could not parse the request; with
		// a single request in flight the reply can only be for it.
		for key, c := range m.pending {
			ch = c
			delete(m.pending, key)
		}
	}
	if ch != nil {
		ch <- line // buffered, one reply per request
	}
	return nil
}

// pushEvent queues an event without ever blocking: when the buffer is full
// the oldest event is dropped and counted.
func (m *Monitor) pushEvent(msg map[string]json.RawMessage) {
	var ev Event
	_ = json.Unmarshal(msg["event"], &ev.Name)
	if d, ok := msg["data"]; ok {
		ev.Data = d
	}
	var ts struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	}
	if t, ok := msg["timestamp"]; ok && json.Unmarshal(t, &ts) == nil {
		ev.Time = time.Unix(ts.Seconds, ts.Microseconds*1000)
	}
	for {
		select {
		case m.events <- ev:
			return
		default:
		}
		select {
		case <-m.events:
			m.dropped.Add(1)
		default:
		}
	}
}

// Execute runs cmd with args (nil for none) and decodes the "return" value
// into out (nil to discard). Replies are correlated by "id", so concurrent
// calls are fine. An error reply is returned as a wrapped *QMPError. When ctx
// ends first, Execute returns ctx.Err() and the connection stays usable (a
// late reply is discarded).
func (m *Monitor) Execute(ctx context.Context, cmd string, args, out any) error {
	req := struct {
		Execute   string          `json:"execute"`
		Arguments json.RawMessage `json:"arguments,omitempty"`
		ID        string          `json:"id"`
	}{Execute: cmd, ID: "vlab-" + strconv.FormatUint(m.newID(), 10)}
	if args != nil {
		a, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("%s: encode arguments: %w", cmd, err)
		}
		if string(a) != "null" {
			req.Arguments = a
		}
	}
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", cmd, err)
	}
	reply, err := m.roundTrip(ctx, strconv.Quote(req.ID), data)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && err == ctxErr {
			return err
		}
		return fmt.Errorf("%s: %w", cmd, err)
	}
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(reply, &msg); err != nil {
		return fmt.Errorf("%s: decode reply: %w", cmd, err)
	}
	if qe := replyError(msg); qe != nil {
		return fmt.Errorf("%s: %w", cmd, qe)
	}
	if out != nil {
		if err := json.Unmarshal(msg["return"], out); err != nil {
			return fmt.Errorf("%s: decode return value: %w", cmd, err)
		}
	}
	return nil
}

// ExecuteRaw sends a raw JSON command object (for `vlab qmp`), adds an id if
// it has none, and returns the reply object verbatim, including "error"
// replies, which are not Go errors here.
func (m *Monitor) ExecuteRaw(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("qmp: raw command must be a JSON object: %.80q", []byte(raw))
	}
	id, ok := obj["id"]
	if !ok {
		id = json.RawMessage(strconv.Quote("vlab-" + strconv.FormatUint(m.newID(), 10)))
		obj["id"] = id
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("qmp: encode raw command: %w", err)
	}
	reply, err := m.roundTrip(ctx, canonicalID(id), data)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && err == ctxErr {
			return nil, err
		}
		return nil, fmt.Errorf("qmp raw command: %w", err)
	}
	return reply, nil
}

func (m *Monitor) newID() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nextID++
	return m.nextID
}

// roundTrip sends one request line and waits for the reply with the id key.
func (m *Monitor) roundTrip(ctx context.Context, key string, data []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch := make(chan []byte, 1)
	m.mu.Lock()
	if m.pending == nil {
		m.mu.Unlock()
		return nil, m.closedErr()
	}
	if _, dup := m.pending[key]; dup {
		m.mu.Unlock()
		return nil, fmt.Errorf("id %s is already in flight", key)
	}
	m.pending[key] = ch
	m.mu.Unlock()

	m.writeMu.Lock()
	_, err := m.conn.Write(append(data, '\n'))
	m.writeMu.Unlock()
	if err != nil {
		m.forget(key)
		select {
		case <-m.done:
			return nil, m.closedErr()
		default:
			return nil, fmt.Errorf("write: %w", err)
		}
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		m.forget(key)
		return nil, ctx.Err()
	case <-m.done:
		select {
		case r := <-ch: // the reply was the last thing read
			return r, nil
		default:
			return nil, m.closedErr()
		}
	}
}

func (m *Monitor) forget(key string) {
	m.mu.Lock()
	if m.pending != nil {
		delete(m.pending, key)
	}
	m.mu.Unlock()
}

func (m *Monitor) closedErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	return ErrMonitorClosed
}

// Events returns the event stream. It is buffered and never stalls replies:
// when nobody reads, the oldest events are dropped (see Dropped). It is
// closed when the connection ends.
func (m *Monitor) Events() <-chan Event { return m.events }

// Dropped returns how many events were discarded because the buffer was full.
func (m *Monitor) Dropped() uint64 { return m.dropped.Load() }

// Greeting returns what QEMU announced on connect.
func (m *Monitor) Greeting() Greeting { return m.greeting }

// Path returns the socket path this monitor is connected to.
func (m *Monitor) Path() string { return m.path }

// Done returns a channel closed when the connection ends.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Err returns why the connection ended (matching ErrMonitorClosed), or nil
// while it is open.
func (m *Monitor) Err() error {
	select {
	case <-m.done:
		return m.closedErr()
	default:
		return nil
	}
}

// Close ends the connection, fails pending calls with ErrMonitorClosed and
// releases the socket's lock when the monitor came from DialAny. It is safe
// to call more than once.
func (m *Monitor) Close() error {
	var err error
	m.closeOnce.Do(func() {
		m.closing.Store(true)
		err = m.conn.Close()
		<-m.done
		if m.lock != nil {
			m.lock.Close()
		}
	})
	return err
}

// DialAny connects to the first of several QMP sockets of one VM that no
// other vlab process holds. QEMU serves one client per QMP socket, so each
// socket has a lock file path+".lock", taken with flock(LOCK_EX|LOCK_NB) and
// held until Close. When every socket is held the error wraps
// ErrMonitorsBusy; other failures are joined into the error.
func DialAny(ctx context.Context, paths []string) (*Monitor, error) {
	if len(paths) == 0 {
		return nil, errors.New("qmp: dial: no monitor sockets given")
	}
	var busy []string
	var errs []error
	for i, p := range paths {
		lock, err := lockSocket(p)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			busy = append(busy, p)
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if i < len(paths)-1 {
			dctx, cancel = context.WithTimeout(ctx, otherSocketTimeout)
		}
		m, err := Dial(dctx, p)
		cancel()
		if err != nil {
			lock.Close()
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		m.lock = lock
		return m, nil
	}
	if len(busy) == len(paths) {
		return nil, fmt.Errorf("%w: %s held by other vlab processes", ErrMonitorsBusy, strings.Join(paths, ", "))
	}
	if len(busy) > 0 {
		errs = append(errs, fmt.Errorf("%s held by other vlab processes", strings.Join(busy, ", ")))
	}
	return nil, fmt.Errorf("qmp: no monitor socket of %s answers: %w", strings.Join(paths, ", "), errors.Join(errs...))
}

// lockSocket takes the per-socket lock; the error wraps EWOULDBLOCK when
// another process (or another Monitor in this one) holds it.
func lockSocket(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("qmp: lock %s: %w", path, err)
	}
	if err := flockNB(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("qmp: lock %s: %w", path, err)
	}
	return f, nil
}

// flockNB takes an exclusive flock on f without waiting.
func flockNB(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			return err
		}
	}
}
