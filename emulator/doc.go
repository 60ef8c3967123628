// Package emulator is how vlab drives QEMU: it probes the host for
// qemu-system-* binaries, accelerators and firmware, chooses KVM or TCG with a
// reason a person can read, builds the exact qemu argv from a Config (a pure
// function, golden-tested), supervises the detached QEMU process, and talks
// QMP to it.
//
// The QMP client is our own, although github.com/digitalocean/go-qemu
// resolves from the module proxy: go-qemu's qmp.Monitor takes no context (a
// hung QEMU hangs the caller), assumes one monitor per VM (vlab gives each VM
// several, so the TUI, a CLI command and `vlab qmp` talk at once), and hands
// events to a single consumer without correlating replies by id. QMP itself is
// a small line-delimited JSON protocol, so the client here is short.
//
// The guest agent client (qga.go) is our own as well: qemu-ga speaks the
// same JSON but without a greeting, serves one client at a time, and keeps
// replies meant for an earlier client in its channel, so every connection
// starts with guest-sync-delimited (a random id; the reply follows a 0xFF
// byte that resynchronises the stream). The guest is untrusted: replies are
// read through size bounds and checked against what was asked for. Its
// channel is a virtio-serial port on a unix socket in the VM's private
// runtime folder (agentdev.go).
//
// Monitor.Screendump has QEMU save the guest's screen as PNG, decoding and
// re-encoding the PPM that QEMU before 7.1 writes (ppm.go, size-capped:
// the guest chooses its display size).
//
// emulator knows nothing of vlab's on-disk library: every path comes in
// through Config and the supervisor's options.
package emulator
