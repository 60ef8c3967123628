package main

import (
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"vlab/tui"
)

// runTUI opens the TUI over the library. Quitting it leaves VMs running.
func (a *app) runTUI(cmd *cobra.Command) error {
	s, err := a.open()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	return tui.Run(cmd.Context(), tui.NewMachineService(s), tui.Options{
		// The console key opens `vlab vnc NAME`: the built-in viewer, or
		// the external one the user configured.
		VNCCommand: func(name string) *exec.Cmd { return exec.Command(self, "vnc", name) },
	})
}
