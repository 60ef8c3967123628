package emulator

import (
	"bufio"
	"bytes"
	"net"
	"testing"

	"vlab/internal/fuzzseed"
)

// discardConn is a net.Conn whose writes go nowhere; the monitor under
// fuzzing reads from its bufio.Reader instead.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }
func (discardConn) Close() error                { return nil }

const fuzzGreeting = `{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}` + "\r\n"

// FuzzQMP feeds a byte stream as what QEMU sends: the greeting, the reply
// to qmp_capabilities, then replies and events for the read loop. The
// monitor must not panic, must end cleanly at the end of the stream, and a
// waiting request gets at most one reply.
func FuzzQMP(f *testing.F) {
	fuzzseed.Add(f,
		[]any{[]byte(fuzzGreeting + `{"return": {}, "id": "vlab-cap"}` + "\r\n" +
			`{"timestamp": {"seconds": 1795297846, "microseconds": 517883}, "event": "STOP"}` + "\r\n" +
			`{"return": {"status": "paused", "running": false}, "id": 1}` + "\r\n")},
		[]any{[]byte(fuzzGreeting + `{"return": {}, "id": "vlab-cap"}` + "\r\n" +
			`{"error": {"class": "GenericError", "desc": "no such device"}, "id": 1}` + "\r\n" +
			`{"event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}, "timestamp": {"seconds": 1, "microseconds": 2}}` + "\r\n")},
		[]any{[]byte(fuzzGreeting + `{"event": "RESUME"}` + "\r\n" + `{"error": {"class": "CommandNotFound", "desc": "x"}, "id": "vlab-cap"}` + "\r\n")},
		[]any{[]byte(fuzzGreeting + `{"return": {}, "id": "vlab-cap"}` + "\r\n" + `{"return": 7}` + "\r\n" + "not json\r\n")},
	)
	f.Fuzz(func(t *testing.T, stream []byte) {
		m := &Monitor{
			path:    "fuzz",
			conn:    discardConn{},
			rd:      bufio.NewReaderSize(bytes.NewReader(stream), 64<<10),
			pending: map[string]chan []byte{"1": make(chan []byte, 1)},
			events:  make(chan Event, eventBuffer),
			done:    make(chan struct{}),
		}
		waiting := m.pending["1"]
		if err := m.handshake(); err != nil {
			return
		}
		m.readLoop() // returns at the end of the stream
		select {
		case <-m.done:
		default:
			t.Fatal("read loop returned without ending the monitor")
		}
		if m.Err() == nil {
			t.Fatal("monitor ended without an error")
		}
		if len(waiting) > 1 {
			t.Fatal("a request got more than one reply")
		}
		for range m.events {
		}
	})
}
