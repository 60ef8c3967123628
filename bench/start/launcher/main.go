// Command launcher is the floor bench/start sets beside `vlab start`: the
// least a Go program can do to start a VM the way vlab does. It spawns the
// QEMU argv it is given detached (its own session, stdin /dev/null, output
// appended to a log), waits until the first QMP socket greets, and exits;
// no spec, no checks, no records. What it adds over QEMU started by hand is
// what running any Go launcher costs on the machine: the Go runtime's
// start-up and exit, and one more fork and exec.
//
// Usage: launcher LOG QMP-SOCKET QEMU-ARGV...
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: launcher LOG QMP-SOCKET QEMU-ARGV...")
		os.Exit(2)
	}
	if err := launch(os.Args[1], os.Args[2], os.Args[3:]); err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		os.Exit(1)
	}
}

func launch(logPath, qmp string, argv []string) error {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	c := &exec.Cmd{Path: argv[0], Args: argv, Stdout: logf, Stderr: logf,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	err = c.Start()
	logf.Close()
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { c.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("qemu exited before QMP greeted (see %s)", logPath)
		default:
		}
		if greets(qmp) {
			return nil
		}
		time.Sleep(time.Millisecond) // vlab's own poll interval
	}
	return fmt.Errorf("QMP never greeted on %s", qmp)
}

func greets(path string) bool {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(conn).ReadSlice('\n')
	return err == nil && bytes.Contains(line, []byte(`"QMP"`))
}
