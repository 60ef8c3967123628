package fakeqemu

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EnvMode is the environment variable that selects the fake's Mode. A test
// binary's startup code runs Main when it is set.
const EnvMode = "VLAB_FAKEQEMU"

// EnvDelay is the environment variable with the slow-start delay (a Go
// duration such as "300ms"); DefaultDelay when unset.
const EnvDelay = "VLAB_FAKEQEMU_DELAY"

// DefaultDelay is how long slow-start mode waits before opening its sockets.
const DefaultDelay = 300 * time.Millisecond

// Mode is how the fake behaves.
type Mode string

// The modes.
const (
	// ModeNormal: system_powerdown emits POWERDOWN, then the "guest" powers
	// off (SHUTDOWN event) and the process exits 0; quit and SIGTERM exit 0.
	ModeNormal Mode = "normal"
	// ModeIgnorePowerdown: the guest ignores system_powerdown (POWERDOWN
	// event only, like a guest without ACPI); quit and SIGTERM still work.
	ModeIgnorePowerdown Mode = "ignore-powerdown"
	// ModeHang: QMP answers, but system_powerdown and quit change nothing and
	// SIGTERM/SIGINT/SIGHUP are ignored; only SIGKILL ends it.
	ModeHang Mode = "hang"
	// ModeExitEarly: prints ExitEarlyMessage to stderr and exits 1 without
	// opening any socket.
	ModeExitEarly Mode = "exit-early"
	// ModeSlowStart: like normal, but opens its sockets only after the
	// delay in EnvDelay.
	ModeSlowStart Mode = "slow-start"
	// ModeGarbage: greets and negotiates normally, then answers every
	// command with bytes that are not JSON. SIGTERM still works.
	ModeGarbage Mode = "garbage"
)

// ExitEarlyMessage is the line ModeExitEarly prints to stderr (the kind of
// line real QEMU prints before exiting 1).
const ExitEarlyMessage = "qemu-system-x86_64: -drive file=/nonexistent/disk.qcow2,if=virtio: Could not open '/nonexistent/disk.qcow2': No such file or directory"

// CommandLogPrefix starts the line the fake writes to its stdout (QEMU's
// log) for every QMP command it runs, e.g. "fakeqemu: qmp cont": tests read
// the order of commands from it.
const CommandLogPrefix = "fakeqemu: qmp "

// Garbage is what ModeGarbage writes instead of a reply.
const Garbage = "\x00\x01\xfe this is not JSON }{\n"

// Version is the QEMU version the fake announces in its greeting.
var Version = struct{ Major, Minor, Micro int }{7, 2, 0}

// Args are the parts of a qemu command line the fake understands.
type Args struct {
	QMP     []string // socket paths of QMP monitors
	Pidfile string
	Paused  bool // -S
}

// ParseArgs extracts the QMP sockets, -pidfile and -S from qemu-style args
// (without argv[0]); everything else is ignored. QEMU's option escaping (a
// doubled comma inside a value) is understood.
func ParseArgs(args []string) (Args, error) {
	var a Args
	chardevs := map[string]string{} // socket chardev id -> path
	var monitors []string
	for i := 0; i < len(args); i++ {
		opt := strings.TrimPrefix(args[i], "-")
		opt = strings.TrimPrefix(opt, "-")
		val := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("option -%s needs a value", opt)
			}
			i++
			return args[i], nil
		}
		switch opt {
		case "S":
			a.Paused = true
		case "pidfile":
			v, err := val()
			if err != nil {
				return a, err
			}
			a.Pidfile = v
		case "qmp":
			v, err := val()
			if err != nil {
				return a, err
			}
			parts := SplitOpts(v)
			if !strings.HasPrefix(parts[0], "unix:") {
				return a, fmt.Errorf("-qmp %q: only unix: sockets are supported", v)
			}
			a.QMP = append(a.QMP, strings.TrimPrefix(parts[0], "unix:"))
		case "chardev":
			v, err := val()
			if err != nil {
				return a, err
			}
			parts := SplitOpts(v)
			if parts[0] != "socket" {
				continue
			}
			kv := keyValues(parts[1:])
			if kv["path"] != "" && kv["id"] != "" {
				chardevs[kv["id"]] = kv["path"]
			}
		case "mon":
			v, err := val()
			if err != nil {
				return a, err
			}
			kv := keyValues(SplitOpts(v))
			if kv["mode"] == "control" {
				monitors = append(monitors, kv["chardev"])
			}
		}
	}
	for _, id := range monitors {
		p, ok := chardevs[id]
		if !ok {
			return a, fmt.Errorf("-mon chardev=%s: no socket chardev with that id", id)
		}
		a.QMP = append(a.QMP, p)
	}
	return a, nil
}

// SplitOpts splits a QEMU option string at single commas; ",," is a literal
// comma (QEMU's own escaping).
func SplitOpts(s string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			if i+1 < len(s) && s[i+1] == ',' {
				cur.WriteByte(',')
				i++
				continue
			}
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(s[i])
	}
	return append(parts, cur.String())
}

func keyValues(parts []string) map[string]string {
	kv := map[string]string{}
	for _, p := range parts {
		k, v, _ := strings.Cut(p, "=")
		kv[k] = v
	}
	return kv
}

// Main runs the fake with qemu-style args (without argv[0]) in the given
// mode, writing what QEMU would print to stdout and stderr. It returns the
// process exit status; the caller exits with it.
func Main(args []string, mode Mode, delay time.Duration, stdout, stderr io.Writer) int {
	a, err := ParseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "fakeqemu: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "fakeqemu: mode %s, pid %d, qmp %s\n", mode, os.Getpid(), strings.Join(a.QMP, " "))
	switch mode {
	case ModeNormal, ModeIgnorePowerdown, ModeHang, ModeSlowStart, ModeGarbage:
	case ModeExitEarly:
		fmt.Fprintln(stderr, ExitEarlyMessage)
		return 1
	default:
		fmt.Fprintf(stderr, "fakeqemu: unknown mode %q\n", mode)
		return 2
	}
	if len(a.QMP) == 0 {
		fmt.Fprintln(stderr, "fakeqemu: no QMP socket on the command line")
		return 1
	}

	f := &fake{mode: mode, running: !a.Paused, prelaunch: a.Paused, log: stdout, exit: make(chan int, 1), sessions: map[*session]bool{}}
	sigs := make(chan os.Signal, 4)
	if mode == ModeHang {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	} else {
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	}
	if mode == ModeSlowStart {
		time.Sleep(delay)
	}
	if a.Pidfile != "" {
		if err := os.WriteFile(a.Pidfile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
			fmt.Fprintf(stderr, "qemu-system-x86_64: cannot create PID file: %v\n", err)
			return 1
		}
	}
	var listeners []net.Listener
	cleanup := func() {
		for _, l := range listeners {
			l.Close()
		}
		for _, p := range a.QMP {
			os.Remove(p)
		}
		if a.Pidfile != "" {
			os.Remove(a.Pidfile)
		}
	}
	for _, p := range a.QMP {
		os.Remove(p) // QEMU replaces a stale socket file too
		l, err := net.Listen("unix", p)
		if err != nil {
			fmt.Fprintf(stderr, "qemu-system-x86_64: -chardev socket,path=%s: Failed to bind socket: %v\n", p, err)
			cleanup()
			return 1
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		listeners = append(listeners, l)
		go f.serve(l)
	}

	var code int
	select {
	case code = <-f.exit:
	case sig := <-sigs:
		fmt.Fprintf(stderr, "qemu-system-x86_64: terminating on signal %d\n", sig.(syscall.Signal))
		f.broadcast("SHUTDOWN", map[string]any{"guest": false, "reason": "host-signal"})
	}
	cleanup()
	return code
}

// fake is the state of one fake QEMU.
type fake struct {
	mode Mode
	exit chan int

	mu        sync.Mutex
	running   bool
	prelaunch bool      // started with -S and never continued, as QEMU's "prelaunch"
	log       io.Writer // stdout (qemu.log): every command is logged as "fakeqemu: qmp CMD"
	sessions  map[*session]bool
}

type session struct {
	wmu        sync.Mutex
	conn       net.Conn
	negotiated bool // only touched by the session's goroutine and under fake.mu
}

func (s *session) send(v any) {
	b, _ := json.Marshal(v)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, _ = s.conn.Write(append(b, '\r', '\n')) // QEMU ends lines with CRLF
}

func (s *session) sendRaw(b string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, _ = io.WriteString(s.conn, b)
}

// serve accepts one client at a time, as QEMU does on a QMP socket.
func (f *fake) serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		f.session(c)
	}
}

func (f *fake) quit(code int) {
	select {
	case f.exit <- code:
	default:
	}
}

func eventMsg(name string, data any) map[string]any {
	now := time.Now()
	msg := map[string]any{
		"event":     name,
		"timestamp": map[string]int64{"seconds": now.Unix(), "microseconds": int64(now.Nanosecond() / 1000)},
	}
	if data != nil {
		msg["data"] = data
	}
	return msg
}

// broadcast sends an event to every negotiated client, as QEMU does.
func (f *fake) broadcast(name string, data any) {
	msg := eventMsg(name, data)
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.sessions {
		if s.negotiated {
			s.send(msg)
		}
	}
}

func (f *fake) session(c net.Conn) {
	s := &session{conn: c}
	defer c.Close()
	f.mu.Lock()
	f.sessions[s] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.sessions, s)
		f.mu.Unlock()
	}()

	s.send(map[string]any{"QMP": map[string]any{
		"version": map[string]any{
			"qemu":    map[string]int{"major": Version.Major, "minor": Version.Minor, "micro": Version.Micro},
			"package": "fakeqemu",
		},
		"capabilities": []string{"oob"},
	}})
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var req struct {
			Execute   string          `json:"execute"`
			Arguments json.RawMessage `json:"arguments"`
			ID        json.RawMessage `json:"id"`
		}
		if err := json.Unmarshal([]byte(line), &req); err != nil {
			s.send(map[string]any{"error": map[string]string{"class": "GenericError", "desc": "JSON parse error"}})
			continue
		}
		reply := func(ret any) {
			msg := map[string]any{"return": ret}
			if req.ID != nil {
				msg["id"] = req.ID
			}
			s.send(msg)
		}
		fail := func(class, desc string) {
			msg := map[string]any{"error": map[string]string{"class": class, "desc": desc}}
			if req.ID != nil {
				msg["id"] = req.ID
			}
			s.send(msg)
		}
		if !s.negotiated {
			if req.Execute != "qmp_capabilities" {
				fail("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'")
				continue
			}
			f.mu.Lock()
			s.negotiated = true
			f.mu.Unlock()
			reply(map[string]any{})
			continue
		}
		if f.mode == ModeGarbage {
			s.sendRaw(Garbage)
			continue
		}
		f.command(req.Execute, req.Arguments, reply, fail)
	}
}

// command runs one negotiated QMP command.
func (f *fake) command(cmd string, args json.RawMessage, reply func(any), fail func(class, desc string)) {
	f.mu.Lock()
	fmt.Fprintf(f.log, "%s%s\n", CommandLogPrefix, cmd)
	f.mu.Unlock()
	switch cmd {
	case "qmp_capabilities":
		fail("CommandNotFound", "Capabilities negotiation is already complete, command ignored")
	case "query-version":
		reply(map[string]any{
			"qemu":    map[string]int{"major": Version.Major, "minor": Version.Minor, "micro": Version.Micro},
			"package": "fakeqemu",
		})
	case "query-status":
		f.mu.Lock()
		running, prelaunch := f.running, f.prelaunch
		f.mu.Unlock()
		status := "paused"
		switch {
		case running:
			status = "running"
		case prelaunch:
			status = "prelaunch"
		}
		reply(map[string]any{"status": status, "singlestep": false, "running": running})
	case "stop":
		f.setRunning(false, "STOP")
		reply(map[string]any{})
	case "cont":
		f.setRunning(true, "RESUME")
		reply(map[string]any{})
	case "system_powerdown":
		f.broadcast("POWERDOWN", nil)
		reply(map[string]any{})
		if f.mode == ModeNormal || f.mode == ModeSlowStart {
			go func() {
				time.Sleep(20 * time.Millisecond) // the guest shutting down
				f.broadcast("SHUTDOWN", map[string]any{"guest": true, "reason": "guest-shutdown"})
				f.quit(0)
			}()
		}
	case "screendump":
		if desc := screendump(args); desc != "" {
			fail("GenericError", desc)
			return
		}
		reply(map[string]any{})
	case "quit":
		if f.mode == ModeHang {
			reply(map[string]any{})
			return
		}
		f.broadcast("SHUTDOWN", map[string]any{"guest": false, "reason": "host-qmp-quit"})
		reply(map[string]any{})
		f.quit(0)
	default:
		fail("CommandNotFound", "The command "+cmd+" has not been found")
	}
}

func (f *fake) setRunning(running bool, event string) {
	f.mu.Lock()
	changed := f.running != running
	f.running = running
	if running {
		f.prelaunch = false
	}
	f.mu.Unlock()
	if changed {
		f.broadcast(event, nil)
	}
}

// MainFromEnv is Main with the mode and delay read from EnvMode and EnvDelay.
func MainFromEnv(args []string, stdout, stderr io.Writer) int {
	delay := DefaultDelay
	if d, err := time.ParseDuration(os.Getenv(EnvDelay)); err == nil {
		delay = d
	}
	return Main(args, Mode(os.Getenv(EnvMode)), delay, stdout, stderr)
}

// screendump writes the fake's screen, 2×1 pixels (red, blue), where QMP
// screendump's arguments say: PNG with format "png", else PPM (as QEMU).
// It returns the error description QEMU would give, "" on success.
func screendump(args json.RawMessage) string {
	var a struct {
		Filename string `json:"filename"`
		Format   string `json:"format"`
	}
	if err := json.Unmarshal(args, &a); err != nil || a.Filename == "" {
		return "Parameter 'filename' is missing"
	}
	var b bytes.Buffer
	switch a.Format {
	case "", "ppm":
		b.WriteString("P6\n2 1\n255\n\xff\x00\x00\x00\x00\xff")
	case "png":
		img := image.NewRGBA(image.Rect(0, 0, 2, 1))
		img.Set(0, 0, color.RGBA{R: 0xff, A: 0xff})
		img.Set(1, 0, color.RGBA{B: 0xff, A: 0xff})
		if err := png.Encode(&b, img); err != nil {
			return err.Error()
		}
	default:
		return "Parameter 'format' does not accept value '" + a.Format + "'"
	}
	if err := os.WriteFile(a.Filename, b.Bytes(), 0o644); err != nil {
		return err.Error()
	}
	return ""
}
