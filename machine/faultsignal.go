package machine

import (
	"os"
	"strings"
	"sync"
	"syscall"
)

// faultSignalEnv is VLAB_FAULT_SIGNAL=STEP=SIG (SIG one of HUP, INT,
// TERM): at STEP this process sends itself SIG, as a terminal hang-up or a
// Ctrl-C arriving exactly there would. Like VLAB_FAULT it is for tests and
// unset in normal use. vlab must then stop at its next safe point, never
// halfway through a critical section.
var faultSignalEnv = sync.OnceValues(func() (step string, sig syscall.Signal) {
	v := os.Getenv("VLAB_FAULT_SIGNAL")
	step, name, ok := strings.Cut(v, "=")
	if !ok {
		return "", 0
	}
	switch name {
	case "HUP":
		return step, syscall.SIGHUP
	case "INT":
		return step, syscall.SIGINT
	case "TERM":
		return step, syscall.SIGTERM
	}
	return "", 0
})

// faultSignal sends the VLAB_FAULT_SIGNAL signal when step is its step.
func faultSignal(step string) {
	if want, sig := faultSignalEnv(); want != "" && want == step {
		syscall.Kill(os.Getpid(), sig)
	}
}
