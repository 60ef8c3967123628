package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) screenshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "screenshot NAME FILE.png",
		Short: "Save a running VM's screen as a PNG (QMP screendump)",
		Long: `Save what the VM's display shows right now as a PNG file. QEMU draws the picture
(QMP screendump), so it matches what a VNC viewer sees. The file appears complete or not at all.`,
		Example: `  vlab screenshot web web.png`,
		Args:    exactArgs("NAME", "FILE.png"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			name, out := args[0], args[1]
			w, h, err := s.Screenshot(cmd.Context(), name, out)
			if err != nil {
				return err
			}
			if a.json {
				return printResult(cmd.OutOrStdout(), struct {
					Path   string `json:"path"`
					Width  int    `json:"width"`
					Height int    `json:"height"`
				}{out, w, h})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "saved %s's screen (%dx%d) to %s\n", name, w, h, out)
			return nil
		},
	}
	cmd.Flags().BoolVar(&a.json, "json", false, `print {"path","width","height"}`)
	return cmd
}
