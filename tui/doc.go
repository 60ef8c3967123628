// Package tui is vlab's terminal workstation: a Bubble Tea program with a
// list of machines beside a live detail pane, a new-VM wizard (an ISO, one
// of the OS gallery's installers or cloud images — downloaded with a
// progress bar — a URL or image file, a kernel, or nothing), an edit
// screen, snapshot, port forwards, shared folders, serial console, QEMU
// monitor (HMP, with the trace log's tail), qemu.log and command-line
// views, a shell in the guest over SSH (the TUI suspends while it runs), a
// copy dialog (scp either way), and the confirmations, progress and status
// line around them.
//
// The screens talk to the rest of vlab only through the Service interface
// (package tui/service, re-exported in service.go), so every screen is
// tested against the in-memory fake of package tui/tuifake (test-only: the
// binary does not contain it) and the real adapter lives in machinesvc.go.
// All I/O happens in tea.Cmds; models are only changed in Update, and views
// return messages rather than change the root. The TUI is event-driven
// (events.go): it lists every machine once, then follows Service.Changes —
// one QMP event subscription per running VM and a file watch on the library
// — re-reading only the machine a change names. Nothing is polled, and an
// untouched TUI does not wake at all: vlab builds against a copy of Bubble
// Tea v2.1.1 (third_party/bubbletea, a replace in go.mod) whose renderer
// flushes after a handled message instead of on a ticker FPS times a
// second, the one cost left above issue 15's idle goal of 0.05 % of a core
// (third_party/bubbletea/PATCH.md says what changed and how to update it).
//
// Run is the entry point; quitting leaves running machines running.
package tui
