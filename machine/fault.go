package machine

import (
	"os"
	"sync"
	"syscall"
)

// Fault injection for the crash tests. Every multi-step operation names its
// steps with faultPoint("op:step"). Two environment variables, read once,
// drive it; both are for tests and unset in normal use:
//
//	VLAB_FAULT_TRACE=FILE  appends the name of every step reached to FILE,
//	                       one per line, so a test can learn an operation's steps;
//	VLAB_FAULT=STEP        kills this process with SIGKILL when it reaches STEP
//	                       (the first time), as a crash or an OOM kill would.
//
// A step name says where the process is, e.g. "clone:copied" is after the
// disks were copied and before anything else; the operation must leave a
// state the next vlab completes or rolls back from every step.
var faultEnv = sync.OnceValues(func() (kill, trace string) {
	return os.Getenv("VLAB_FAULT"), os.Getenv("VLAB_FAULT_TRACE")
})

// faultPoint marks step of a multi-step operation.
func faultPoint(step string) {
	faultSignal(step) // faultsignal.go
	kill, trace := faultEnv()
	if kill == "" && trace == "" {
		return
	}
	if trace != "" {
		if f, err := os.OpenFile(trace, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			f.WriteString(step + "\n")
			f.Sync()
			f.Close()
		}
	}
	if kill == step {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL cannot be caught; wait for it to land
	}
}
