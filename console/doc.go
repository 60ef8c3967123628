// Package console is how a person sees and types into a guest: the serial
// console (attach, detach, follow the log) and, for graphical guests, VNC.
//
// It never writes to the terminal itself: callers pass the reader and
// writer to copy between. It knows nothing of vlab's library either: a
// Screen (a VM's VNC sockets, password file and password setter) is filled
// by the caller from machine.VNCDisplay. Screenshots are not drawn here:
// QEMU writes them (emulator's Monitor.Screendump, machine's
// Store.Screenshot).
package console
