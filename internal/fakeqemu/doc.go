// Package fakeqemu is a stand-in for qemu-system-* in supervision tests.
//
// A test binary re-executes itself with qemu-style arguments and the
// VLAB_FAKEQEMU environment variable naming a Mode; its startup code calls
// Main, which parses the QMP sockets (-qmp unix:PATH,... and
// -chardev socket,id=ID,path=PATH,... with -mon chardev=ID,mode=control) and
// -pidfile, serves QMP on every socket (one client at a time, like QEMU) and
// behaves as the mode says: a guest that powers off on system_powerdown, one
// that ignores it, a QEMU that hangs, one that fails at start, one that is
// slow to open its sockets, and one that writes junk on the socket.
//
// It is a test helper, not a QEMU emulation: it answers only the handful of
// commands vlab's supervisor and tests use.
package fakeqemu
