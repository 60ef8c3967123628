// Package emulator is how vlab drives QEMU: it probes the host for
// qemu-system-* binaries, accelerators and firmware, chooses KVM or TCG with a
// reason a person can read, builds the exact qemu argv from a Config (a pure
// function, golden-tested), supervises the detached QEMU process, and talks
// QMP to it.
//
// The QMP client is our own: github.com/digitalocean/go-qemu cannot be fetched
// from the module proxy this project builds with, and QMP itself is a small
// line-delimited JSON protocol.
//
// emulator knows nothing of vlab's on-disk library: every path comes in
// through Config and the supervisor's options.
package emulator
