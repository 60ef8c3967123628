package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// interruptSignals are the signals that end a vlab command: Ctrl-C, a kill,
// and the terminal going away (SIGHUP, e.g. an ssh session dropped during
// `vlab start`).
var interruptSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// signalContext returns a context cancelled by the first of
// interruptSignals. The signals stay caught until stop is called, so none of
// them kills vlab in the middle of a step: the operation sees the cancelled
// context, finishes its critical section (the machine package completes
// what must not be left half-done with a context that outlives the signal)
// and stops at the next safe point.
func signalContext() (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(context.Background(), interruptSignals...)
}
