package emulator

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// The guest agent (qemu-ga) speaks QMP-like JSON over the virtio-serial
// channel AgentChannel: no greeting, no capabilities, one command at a
// time, replies {"return": ...} or {"error": {...}}. The channel outlives
// client connections, so a reply meant for an earlier client (or a command
// a timeout cut short) may still be in it: every connection, and every
// command after a broken one, starts with guest-sync-delimited, whose reply
// the agent prefixes with a 0xFF byte that never occurs in JSON.
//
// The guest is not trusted: every reply is read through a size bound, and
// decoded data is checked against what was asked for.

// AgentError is an error reply from the guest agent.
type AgentError struct {
	Class string
	Desc  string
}

// Error returns "guest agent: <Desc> (<Class>)".
func (e *AgentError) Error() string { return "guest agent: " + e.Desc + " (" + e.Class + ")" }

// ErrAgentClosed is returned (wrapped) by calls on a closed Agent.
var ErrAgentClosed = errors.New("guest agent: connection closed")

// ErrAgentReply is returned (wrapped) when the agent's reply is too large,
// not JSON, or not what the command returns; the connection is resynced
// before the next command.
var ErrAgentReply = errors.New("guest agent: bad reply")

const (
	// agentReplyMax bounds an ordinary reply.
	agentReplyMax = 1 << 20
	// agentExecOutputMax is what qemu-ga keeps of each output stream of
	// guest-exec (GUEST_EXEC_MAX_OUTPUT in QEMU 7.2: 16 MiB; more is cut off
	// and marked out-truncated/err-truncated).
	agentExecOutputMax = 16 << 20
	// agentStatusMax bounds a guest-exec-status reply: both streams in full,
	// base64-encoded, and room for the rest.
	agentStatusMax = 2*(agentExecOutputMax/3+1)*4 + 64<<10
	// AgentChunk is how many bytes FileRead and FileWrite move per call.
	AgentChunk = 1 << 20
	// agentSkipMax bounds how many bytes a resync skips looking for the
	// 0xFF sentinel.
	agentSkipMax = 64 << 20
	// agentSentinel precedes the reply to guest-sync-delimited.
	agentSentinel = 0xFF
)

// Agent is one connection to a guest agent. Its methods are safe for
// concurrent use; commands run one at a time. The agent serves one client
// at a time, so callers hold the connection only as long as they need it.
type Agent struct {
	path string
	conn net.Conn
	rd   *bufio.Reader

	mu       sync.Mutex
	closed   bool
	needSync bool
	nextID   uint64
}

// DialAgent connects to the guest agent socket path and synchronises with
// the agent (guest-sync-delimited). A guest without a running agent
// never answers: ctx bounds the wait.
func DialAgent(ctx context.Context, path string) (*Agent, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("guest agent: connect %s: %w", path, err)
	}
	a := &Agent{path: path, conn: conn, rd: bufio.NewReaderSize(conn, 64<<10), needSync: true}
	a.mu.Lock()
	defer a.mu.Unlock()
	stop := a.arm(ctx)
	err = a.sync()
	stop()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("guest agent %s: %w", path, ctxErr(ctx, err))
	}
	return a, nil
}

// Close ends the connection.
func (a *Agent) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	return a.conn.Close()
}

// arm makes blocked reads and writes on the connection end when ctx does.
// The returned function disarms it.
func (a *Agent) arm(ctx context.Context) func() {
	if dl, ok := ctx.Deadline(); ok {
		_ = a.conn.SetDeadline(dl)
	} else {
		_ = a.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = a.conn.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		_ = a.conn.SetDeadline(time.Time{})
	}
}

// ctxErr prefers ctx's error to the i/o timeout it caused.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded // the deadline armed on the connection passed first
	}
	return err
}

func randomID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) >> 12 // stays exact in a JSON number
}

// sync runs guest-sync-delimited with a random id: it first sends 0xFF so
// the agent drops any half-read command, then skips everything up to the
// 0xFF the agent puts before its reply, and reads replies until the one
// with our id (earlier syncs' replies may come first).
func (a *Agent) sync() error {
	id := randomID()
	req, _ := json.Marshal(map[string]any{"execute": "guest-sync-delimited", "arguments": map[string]any{"id": id}})
	if _, err := a.conn.Write(append([]byte{agentSentinel}, append(req, '\n')...)); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	for range 16 {
		if err := a.skipToSentinel(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		line, err := a.readLine(agentReplyMax)
		if err != nil {
			return fmt.Errorf("sync: %w", err)
		}
		var r struct {
			Return *uint64 `json:"return"`
		}
		if json.Unmarshal(line, &r) == nil && r.Return != nil && *r.Return == id {
			a.needSync = false
			return nil
		}
	}
	return fmt.Errorf("sync: %w: no reply with id %d", ErrAgentReply, id)
}

// skipToSentinel discards input up to and including a 0xFF byte.
func (a *Agent) skipToSentinel() error {
	skipped := 0
	for {
		b, err := a.rd.ReadSlice(agentSentinel)
		skipped += len(b)
		if err == nil {
			return nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
		if skipped > agentSkipMax {
			return fmt.Errorf("%w: %d bytes without a sync marker", ErrAgentReply, skipped)
		}
	}
}

// readLine reads one newline-terminated reply of at most limit bytes.
func (a *Agent) readLine(limit int) ([]byte, error) {
	var buf []byte
	for {
		b, err := a.rd.ReadSlice('\n')
		if len(buf)+len(b) > limit {
			return nil, fmt.Errorf("%w: reply over %d bytes", ErrAgentReply, limit)
		}
		buf = append(buf, b...)
		if err == nil {
			buf = bytes.TrimSpace(buf)
			if len(buf) == 0 { // a blank line between replies
				continue
			}
			return buf, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: the agent closed the channel", ErrAgentClosed)
			}
			return nil, err
		}
	}
}

// Execute runs one agent command and decodes its "return" into out (nil:
// ignore it). The reply may be at most limit bytes (0: 1 MiB). A reply
// that does not arrive, or does not parse, leaves the connection to be
// resynced before the next command.
func (a *Agent) Execute(ctx context.Context, cmd string, args, out any, limit int) error {
	if limit <= 0 {
		limit = agentReplyMax
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("%s: %w", cmd, ErrAgentClosed)
	}
	stop := a.arm(ctx)
	defer stop()
	err := a.execute(cmd, args, out, limit, false)
	if err != nil {
		var ae *AgentError
		if !errors.As(err, &ae) {
			a.needSync = true
		}
		return fmt.Errorf("%s: %w", cmd, ctxErr(ctx, err))
	}
	return nil
}

func (a *Agent) execute(cmd string, args, out any, limit int, noReply bool) error {
	if a.needSync {
		if err := a.sync(); err != nil {
			return err
		}
	}
	a.nextID++
	id := fmt.Sprintf("vlab-%d", a.nextID)
	req := map[string]any{"execute": cmd, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := a.conn.Write(append(data, '\n')); err != nil {
		return err
	}
	if noReply {
		return nil
	}
	for {
		line, err := a.readLine(limit)
		if err != nil {
			return err
		}
		var r struct {
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
			ID *string `json:"id"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			return fmt.Errorf("%w: %v", ErrAgentReply, err)
		}
		if r.ID != nil && *r.ID != id {
			continue // a reply to a command a timeout cut short
		}
		if r.Error != nil {
			return &AgentError{Class: clip(r.Error.Class, 100), Desc: clip(r.Error.Desc, 1000)}
		}
		if r.Return == nil {
			return fmt.Errorf("%w: neither return nor error", ErrAgentReply)
		}
		if out != nil {
			if err := json.Unmarshal(r.Return, out); err != nil {
				return fmt.Errorf("%w: %v", ErrAgentReply, err)
			}
		}
		return nil
	}
}

// clip shortens text from the guest for error messages.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Ping runs guest-ping.
func (a *Agent) Ping(ctx context.Context) error {
	return a.Execute(ctx, "guest-ping", nil, nil, 0)
}

// ExecRequest is one guest-exec: Path is looked up in the agent's PATH,
// Args are passed as they are (no shell), Input is the program's stdin.
type ExecRequest struct {
	Path  string
	Args  []string
	Env   []string // "NAME=value"; nil = the agent's environment
	Input []byte
}

// ExecStatus is the outcome of a guest-exec.
type ExecStatus struct {
	Exited       bool
	ExitCode     int // valid when Exited and Signal == 0
	Signal       int // the signal that ended the program, 0 = none
	Stdout       []byte
	Stderr       []byte
	OutTruncated bool // the agent kept only the first 16 MiB (QEMU 7.2)
	ErrTruncated bool
}

// Exec starts a program in the guest with its output captured and
// returns its guest pid.
func (a *Agent) Exec(ctx context.Context, r ExecRequest) (int, error) {
	args := map[string]any{"path": r.Path, "capture-output": true}
	if r.Args != nil {
		args["arg"] = r.Args
	}
	if r.Env != nil {
		args["env"] = r.Env
	}
	if r.Input != nil {
		args["input-data"] = base64.StdEncoding.EncodeToString(r.Input)
	}
	var out struct {
		PID *int `json:"pid"`
	}
	if err := a.Execute(ctx, "guest-exec", args, &out, 0); err != nil {
		return 0, err
	}
	if out.PID == nil || *out.PID <= 0 {
		return 0, fmt.Errorf("guest-exec: %w: no pid", ErrAgentReply)
	}
	return *out.PID, nil
}

// ExecStatusOf runs guest-exec-status for pid once.
func (a *Agent) ExecStatusOf(ctx context.Context, pid int) (ExecStatus, error) {
	var r struct {
		Exited       bool   `json:"exited"`
		ExitCode     *int   `json:"exitcode"`
		Signal       *int   `json:"signal"`
		OutData      string `json:"out-data"`
		ErrData      string `json:"err-data"`
		OutTruncated bool   `json:"out-truncated"`
		ErrTruncated bool   `json:"err-truncated"`
	}
	if err := a.Execute(ctx, "guest-exec-status", map[string]any{"pid": pid}, &r, agentStatusMax); err != nil {
		return ExecStatus{}, err
	}
	st := ExecStatus{Exited: r.Exited, OutTruncated: r.OutTruncated, ErrTruncated: r.ErrTruncated}
	if !r.Exited {
		return st, nil
	}
	var err error
	if st.Stdout, err = decodeBounded(r.OutData, agentExecOutputMax); err != nil {
		return ExecStatus{}, fmt.Errorf("guest-exec-status: out-data: %w", err)
	}
	if st.Stderr, err = decodeBounded(r.ErrData, agentExecOutputMax); err != nil {
		return ExecStatus{}, fmt.Errorf("guest-exec-status: err-data: %w", err)
	}
	switch {
	case r.Signal != nil && *r.Signal > 0:
		st.Signal = *r.Signal
		st.ExitCode = 128 + *r.Signal
	case r.ExitCode != nil:
		st.ExitCode = *r.ExitCode
	default:
		return ExecStatus{}, fmt.Errorf("guest-exec-status: %w: exited without an exit code", ErrAgentReply)
	}
	if st.ExitCode < 0 || st.ExitCode > 255+128 {
		return ExecStatus{}, fmt.Errorf("guest-exec-status: %w: exit code %d", ErrAgentReply, st.ExitCode)
	}
	return st, nil
}

// Run starts a program in the guest and waits for it to end (polling
// guest-exec-status), returning its status and output. If ctx ends first,
// the program keeps running in the guest.
func (a *Agent) Run(ctx context.Context, r ExecRequest) (ExecStatus, error) {
	pid, err := a.Exec(ctx, r)
	if err != nil {
		return ExecStatus{}, err
	}
	delay := 5 * time.Millisecond
	for {
		st, err := a.ExecStatusOf(ctx, pid)
		if err != nil || st.Exited {
			return st, err
		}
		select {
		case <-ctx.Done():
			return ExecStatus{}, fmt.Errorf("guest-exec %s: %w", r.Path, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 500*time.Millisecond)
	}
}

// decodeBounded decodes base64 of at most max decoded bytes.
func decodeBounded(s string, max int) ([]byte, error) {
	if base64.StdEncoding.DecodedLen(len(s)) > max+3 {
		return nil, fmt.Errorf("%w: %d bytes of base64, over %d", ErrAgentReply, len(s), max)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAgentReply, err)
	}
	return b, nil
}

// FileOpen opens path in the guest (mode as fopen: "r", "w", "a"...) and
// returns the agent's handle.
func (a *Agent) FileOpen(ctx context.Context, path, mode string) (int64, error) {
	var h *int64
	if err := a.Execute(ctx, "guest-file-open", map[string]any{"path": path, "mode": mode}, &h, 0); err != nil {
		return 0, err
	}
	if h == nil || *h < 0 {
		return 0, fmt.Errorf("guest-file-open: %w: no handle", ErrAgentReply)
	}
	return *h, nil
}

// FileRead reads at most count (<= AgentChunk) bytes; eof reports the end.
func (a *Agent) FileRead(ctx context.Context, h int64, count int) (data []byte, eof bool, err error) {
	if count <= 0 || count > AgentChunk {
		count = AgentChunk
	}
	var r struct {
		Count  *int   `json:"count"`
		BufB64 string `json:"buf-b64"`
		EOF    bool   `json:"eof"`
	}
	if err := a.Execute(ctx, "guest-file-read", map[string]any{"handle": h, "count": count}, &r, 2*count+64<<10); err != nil {
		return nil, false, err
	}
	data, err = decodeBounded(r.BufB64, count)
	if err != nil {
		return nil, false, fmt.Errorf("guest-file-read: %w", err)
	}
	if len(data) > count || r.Count == nil || *r.Count != len(data) {
		return nil, false, fmt.Errorf("guest-file-read: %w: %d bytes for a read of %d", ErrAgentReply, len(data), count)
	}
	return data, r.EOF, nil
}

// FileWrite writes data (at most AgentChunk bytes) to the guest file.
func (a *Agent) FileWrite(ctx context.Context, h int64, data []byte) error {
	if len(data) > AgentChunk {
		return fmt.Errorf("guest-file-write: %d bytes, over the %d-byte chunk", len(data), AgentChunk)
	}
	var r struct {
		Count *int `json:"count"`
	}
	if err := a.Execute(ctx, "guest-file-write", map[string]any{"handle": h, "buf-b64": base64.StdEncoding.EncodeToString(data)}, &r, 0); err != nil {
		return err
	}
	if r.Count == nil || *r.Count != len(data) {
		return fmt.Errorf("guest-file-write: short write")
	}
	return nil
}

// FileClose closes a guest file handle.
func (a *Agent) FileClose(ctx context.Context, h int64) error {
	return a.Execute(ctx, "guest-file-close", map[string]any{"handle": h}, nil, 0)
}

// FSFreeze freezes the guest's filesystems (guest-fsfreeze-freeze) and
// returns how many it froze. Until FSThaw, the guest's writes block.
func (a *Agent) FSFreeze(ctx context.Context) (int, error) {
	var n int
	if err := a.Execute(ctx, "guest-fsfreeze-freeze", nil, &n, 0); err != nil {
		return 0, err
	}
	return n, nil
}

// FSThaw thaws the guest's filesystems and returns how many it thawed.
func (a *Agent) FSThaw(ctx context.Context) (int, error) {
	var n int
	if err := a.Execute(ctx, "guest-fsfreeze-thaw", nil, &n, 0); err != nil {
		return 0, err
	}
	return n, nil
}

// FSFreezeStatus returns "thawed" or "frozen".
func (a *Agent) FSFreezeStatus(ctx context.Context) (string, error) {
	var s string
	if err := a.Execute(ctx, "guest-fsfreeze-status", nil, &s, 0); err != nil {
		return "", err
	}
	if s != "thawed" && s != "frozen" {
		return "", fmt.Errorf("guest-fsfreeze-status: %w: %q", ErrAgentReply, clip(s, 40))
	}
	return s, nil
}

// Shutdown asks the agent to shut the guest down (mode "powerdown",
// "halt" or "reboot"). The agent sends no reply when it complies; an
// error reply that arrives within ctx's time is returned, silence is
// success.
func (a *Agent) Shutdown(ctx context.Context, mode string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return fmt.Errorf("guest-shutdown: %w", ErrAgentClosed)
	}
	stop := a.arm(ctx)
	defer stop()
	if err := a.execute("guest-shutdown", map[string]any{"mode": mode}, nil, 0, true); err != nil {
		a.needSync = true
		return fmt.Errorf("guest-shutdown: %w", ctxErr(ctx, err))
	}
	a.needSync = true
	line, err := a.readLine(agentReplyMax)
	if err != nil {
		return nil // silence or the channel closing: the guest is going down
	}
	var r struct {
		Error *struct {
			Class string `json:"class"`
			Desc  string `json:"desc"`
		} `json:"error"`
	}
	if json.Unmarshal(line, &r) == nil && r.Error != nil {
		return fmt.Errorf("guest-shutdown: %w", &AgentError{Class: clip(r.Error.Class, 100), Desc: clip(r.Error.Desc, 1000)})
	}
	return nil
}
