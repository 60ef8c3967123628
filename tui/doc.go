// Package tui is vlab's terminal workstation: a Bubble Tea program with a
// list of machines beside a live detail pane, a new-VM wizard, an edit
// screen, snapshot, serial console, qemu.log and command-line views, and the
// confirmations, progress and status line around them.
//
// The screens talk to the rest of vlab only through the Service interface
// (service.go), in terms of small tui-side types, so every screen is tested
// against the in-memory FakeService and the real adapter lives in
// machinesvc.go. All I/O happens in tea.Cmds; models are only changed in
// Update. Live updates arrive through Service.Changes, a push stream: the TUI
// re-lists when told and otherwise only refreshes the CPU%/uptime of running
// machines on a slow tick.
//
// Run is the entry point; quitting leaves running machines running.
package tui
