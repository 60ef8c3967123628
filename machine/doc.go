// Package machine is what a VM is and does: its Spec (machine.toml), the
// Store (the on-disk library under the XDG directories), and the lifecycle
// (start, stop, pause, reset) reconciled from facts — the process record,
// QMP query-status and QMP events — rather than remembered booleans.
//
// machine is the only package that knows the on-disk layout. It drives QEMU
// through package emulator and never prints to the terminal.
package machine
