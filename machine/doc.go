// Package machine is what a VM is and does: its Spec (machine.toml), the
// Store (the on-disk library under the XDG directories), and the lifecycle
// (start, stop, pause, reset) reconciled from facts — the process record,
// QMP query-status and QMP events — rather than remembered booleans.
//
// Multi-step operations on the library (create, delete, clone, disk convert
// and import, snapshots) are crash-consistent: each writes an intent record
// first, fsyncs files and folders before anything they replace goes, and a
// vlab killed half-way is completed or rolled back by the next one (see
// intent.go; fault.go names the steps the crash tests kill vlab at).
//
// machine is the only package that knows the on-disk layout. It drives QEMU
// through package emulator and never prints to the terminal. It knows where
// a VM's screen is (VNCDisplay) and has QEMU save it (Screenshot), but does
// not import package console, which shows screens to a person.
package machine
