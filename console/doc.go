// Package console is how a person sees and types into a guest: the serial
// console (attach, detach, follow the log) and, for graphical guests, VNC.
//
// It never writes to the terminal itself: callers pass the reader and
// writer to copy between.
package console
