package emulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAgent is a guest agent on a unix socket: it answers
// guest-sync-delimited like qemu-ga (0xFF, then the id) and hands every
// other command to handle, which writes whatever it likes.
type fakeAgent struct {
	path   string
	handle func(w *bufio.Writer, cmd string, args json.RawMessage, id json.RawMessage)
	mu     sync.Mutex
	seen   []string
}

func newFakeAgent(t *testing.T, handle func(w *bufio.Writer, cmd string, args, id json.RawMessage)) *fakeAgent {
	t.Helper()
	dir, err := os.MkdirTemp("", "qga")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeAgent{path: filepath.Join(dir, "qga.sock"), handle: handle}
	l, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeAgent) serve(c net.Conn) {
	defer c.Close()
	rd := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			return
		}
		line = bytes.TrimLeft(line, "\xff")
		var req struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
			ID        json.RawMessage `json:"id"`
		}
		if json.Unmarshal(line, &req) != nil {
			continue
		}
		f.mu.Lock()
		f.seen = append(f.seen, req.Execute)
		f.mu.Unlock()
		if req.Execute == "guest-sync-delimited" {
			var a struct {
				ID uint64 `json:"id"`
			}
			json.Unmarshal(req.Arguments, &a)
			fmt.Fprintf(w, "\xff{\"return\": %d}\n", a.ID)
		} else {
			f.handle(w, req.Execute, req.Arguments, req.ID)
		}
		if w.Flush() != nil {
			return
		}
	}
}

func (f *fakeAgent) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

func reply(w *bufio.Writer, id json.RawMessage, ret any) {
	data, _ := json.Marshal(map[string]any{"return": ret, "id": id})
	w.Write(append(data, '\n'))
}

func dialFake(t *testing.T, f *fakeAgent) *Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := DialAgent(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestAgentExecStatusAndStreams(t *testing.T) {
	polls := 0
	var input []byte
	f := newFakeAgent(t, func(w *bufio.Writer, cmd string, args, id json.RawMessage) {
		switch cmd {
		case "guest-exec":
			var a struct {
				Path    string   `json:"path"`
				Arg     []string `json:"arg"`
				Input   string   `json:"input-data"`
				Capture bool     `json:"capture-output"`
			}
			json.Unmarshal(args, &a)
			if a.Path != "sh" || len(a.Arg) != 2 || a.Arg[1] != "echo 'a b'" || !a.Capture {
				fmt.Fprintf(w, `{"error": {"class": "GenericError", "desc": "bad args %s"}}`+"\n", args)
				return
			}
			input, _ = base64.StdEncoding.DecodeString(a.Input)
			reply(w, id, map[string]any{"pid": 42})
		case "guest-exec-status":
			polls++
			if polls < 3 {
				reply(w, id, map[string]any{"exited": false})
				return
			}
			reply(w, id, map[string]any{"exited": true, "exitcode": 7,
				"out-data": base64.StdEncoding.EncodeToString([]byte("out\n")),
				"err-data": base64.StdEncoding.EncodeToString([]byte("err\n"))})
		}
	})
	a := dialFake(t, f)
	st, err := a.Run(ctx5(t), ExecRequest{Path: "sh", Args: []string{"-c", "echo 'a b'"}, Input: []byte("stdin")})
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exited || st.ExitCode != 7 || string(st.Stdout) != "out\n" || string(st.Stderr) != "err\n" || string(input) != "stdin" {
		t.Fatalf("Run = %+v (input %q)", st, input)
	}
}

func TestAgentErrorReplyKeepsConnection(t *testing.T) {
	f := newFakeAgent(t, func(w *bufio.Writer, cmd string, args, id json.RawMessage) {
		if cmd == "guest-fsfreeze-freeze" {
			fmt.Fprintf(w, `{"error": {"class": "GenericError", "desc": "no"}, "id": %s}`+"\n", id)
			return
		}
		reply(w, id, map[string]any{})
	})
	a := dialFake(t, f)
	_, err := a.FSFreeze(ctx5(t))
	var ae *AgentError
	if !errors.As(err, &ae) || ae.Desc != "no" {
		t.Fatalf("FSFreeze = %v, want an AgentError", err)
	}
	if err := a.Ping(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.Join(f.commands(), " "), "guest-sync-delimited"); n != 1 {
		t.Errorf("an error reply caused a resync: %v", f.commands())
	}
}

// TestAgentHostileReplies: a reply over the bound, garbage, a reply to
// someone else's id, bad base64 and counts that do not match are errors
// and never blow memory; the next command resyncs and works.
func TestAgentHostileReplies(t *testing.T) {
	mode := ""
	f := newFakeAgent(t, func(w *bufio.Writer, cmd string, args, id json.RawMessage) {
		if cmd == "guest-ping" {
			reply(w, id, map[string]any{})
			return
		}
		switch mode {
		case "huge":
			// 8 MiB without a newline, then more: the client must give up at
			// its bound.
			chunk := bytes.Repeat([]byte("A"), 1<<20)
			w.WriteString(`{"return": "`)
			for range 8 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			w.WriteString("\"}\n")
		case "garbage":
			w.WriteString("}}}{{{ not json\n")
		case "read-overlong":
			reply(w, id, map[string]any{"count": 4, "buf-b64": base64.StdEncoding.EncodeToString(make([]byte, 4096)), "eof": false})
		case "read-count":
			reply(w, id, map[string]any{"count": 3, "buf-b64": base64.StdEncoding.EncodeToString([]byte("abcd")), "eof": false})
		case "bad-b64":
			reply(w, id, map[string]any{"count": 4, "buf-b64": "!!!!", "eof": true})
		case "exit-code":
			reply(w, id, map[string]any{"exited": true, "exitcode": -5})
		case "no-pid":
			reply(w, id, map[string]any{})
		case "status":
			reply(w, id, "melting")
		}
	})
	a := dialFake(t, f)
	for _, m := range []string{"huge", "garbage", "read-overlong", "read-count", "bad-b64", "exit-code", "no-pid", "status"} {
		mode = m
		var err error
		switch m {
		case "huge", "garbage":
			_, err = a.FSFreeze(ctx5(t))
		case "read-overlong", "read-count", "bad-b64":
			_, _, err = a.FileRead(ctx5(t), 1, 4)
		case "exit-code":
			_, err = a.ExecStatusOf(ctx5(t), 1)
		case "no-pid":
			_, err = a.Exec(ctx5(t), ExecRequest{Path: "true"})
		case "status":
			_, err = a.FSFreezeStatus(ctx5(t))
		}
		if !errors.Is(err, ErrAgentReply) {
			t.Errorf("%s: err = %v, want ErrAgentReply", m, err)
		}
		if err := a.Ping(ctx5(t)); err != nil {
			t.Fatalf("%s: ping after: %v", m, err)
		}
	}
}

// TestAgentLateReplyResync: a reply that comes after the caller gave up
// must not be taken for the next command's.
func TestAgentLateReplyResync(t *testing.T) {
	first := true
	f := newFakeAgent(t, func(w *bufio.Writer, cmd string, args, id json.RawMessage) {
		if cmd == "guest-fsfreeze-status" && first {
			first = false
			time.Sleep(300 * time.Millisecond)
			w.WriteString(`{"return": "frozen"}` + "\n") // late, and without an id
			return
		}
		reply(w, id, "thawed")
	})
	a := dialFake(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := a.FSFreezeStatus(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	time.Sleep(400 * time.Millisecond)
	s, err := a.FSFreezeStatus(ctx5(t))
	if err != nil || s != "thawed" {
		t.Fatalf("FSFreezeStatus = %q, %v: the late reply was taken", s, err)
	}
}

func TestAgentDialSilentGuest(t *testing.T) {
	dir, _ := os.MkdirTemp("", "qga")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "qga.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepts (like QEMU's chardev) but no agent answers
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := DialAgent(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DialAgent = %v, want the deadline", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("DialAgent ignored its deadline")
	}
}

// TestAgentSyncSkipsStaleOutput: what an earlier client left in the
// channel (a reply, half a reply, a stale sync) comes before the marker.
func TestAgentSyncSkipsStaleOutput(t *testing.T) {
	dir, _ := os.MkdirTemp("", "qga")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "qga.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		rd := bufio.NewReader(c)
		line, _ := rd.ReadBytes('\n')
		var req struct {
			Arguments struct {
				ID uint64 `json:"id"`
			} `json:"arguments"`
		}
		json.Unmarshal(bytes.TrimLeft(line, "\xff"), &req)
		fmt.Fprintf(c, "{\"return\": {\"pid\": 9}}\n{\"retu\xff{\"return\": 12345}\n\xff{\"return\": %d}\n", req.Arguments.ID)
		line, _ = rd.ReadBytes('\n')
		if bytes.Contains(line, []byte("guest-ping")) {
			c.Write([]byte(`{"return": {}}` + "\n"))
		}
		time.Sleep(time.Second)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := DialAgent(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAgentShutdownAndFiles(t *testing.T) {
	var written []byte
	refuse := false
	f := newFakeAgent(t, func(w *bufio.Writer, cmd string, args, id json.RawMessage) {
		switch cmd {
		case "guest-shutdown":
			if refuse {
				fmt.Fprintf(w, `{"error": {"class": "GenericError", "desc": "denied"}}`+"\n")
			} // else: silence, as qemu-ga
		case "guest-file-open":
			reply(w, id, 1000)
		case "guest-file-write":
			var a struct {
				Buf string `json:"buf-b64"`
			}
			json.Unmarshal(args, &a)
			b, _ := base64.StdEncoding.DecodeString(a.Buf)
			written = append(written, b...)
			reply(w, id, map[string]any{"count": len(b), "eof": false})
		case "guest-file-read":
			reply(w, id, map[string]any{"count": 2, "buf-b64": base64.StdEncoding.EncodeToString([]byte("hi")), "eof": true})
		default:
			reply(w, id, map[string]any{})
		}
	})
	a := dialFake(t, f)
	ctx := ctx5(t)
	h, err := a.FileOpen(ctx, "/tmp/x", "w")
	if err != nil || h != 1000 {
		t.Fatalf("FileOpen = %d, %v", h, err)
	}
	if err := a.FileWrite(ctx, h, []byte("hello")); err != nil || string(written) != "hello" {
		t.Fatalf("FileWrite: %v (%q)", err, written)
	}
	if d, eof, err := a.FileRead(ctx, h, 10); err != nil || string(d) != "hi" || !eof {
		t.Fatalf("FileRead = %q %v %v", d, eof, err)
	}
	if err := a.FileClose(ctx, h); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := a.Shutdown(sctx, "powerdown"); err != nil {
		t.Fatalf("Shutdown (silent agent) = %v", err)
	}
	refuse = true
	sctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	var ae *AgentError
	if err := a.Shutdown(sctx2, "powerdown"); !errors.As(err, &ae) {
		t.Fatalf("Shutdown (refused) = %v, want the agent's error", err)
	}
}

func TestAgentChannelNeedsPCI(t *testing.T) {
	if !AgentSupported(ArchX86_64, "") || !AgentSupported(ArchPPC, "mac99") || AgentSupported(ArchI386, "isapc") {
		t.Errorf("AgentSupported: q35 and mac99 have PCI, isapc has none")
	}
	c := agentConfig("/vlab", ArchI386)
	c.Machine = "isapc"
	if _, err := Cmdline(c, goldenHost(t)); err == nil || !strings.Contains(err.Error(), "--agent off") {
		t.Errorf("isapc with the agent: %v, want a refusal naming --agent off", err)
	}
	c = agentConfig("/vlab", ArchX86_64)
	c.Paths.Agent = ""
	if _, err := Cmdline(c, goldenHost(t)); err == nil {
		t.Error("agent without a socket path accepted")
	}
}
