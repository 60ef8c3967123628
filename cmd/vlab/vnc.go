package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"vlab/console"
	"vlab/machine"
)

// vncOptions are vlab vnc's flags.
type vncOptions struct {
	external, asJSON bool
	viewer, graphics string
}

func (a *app) vncCmd() *cobra.Command {
	var o vncOptions
	cmd := &cobra.Command{
		Use:   "vnc NAME",
		Short: "Show a VM's screen in this terminal, or in an external VNC viewer (--external)",
		Long: `Show the VM's graphical console. By default vlab draws it in this terminal (half-block
cells in true colour, scaled to the window) and sends your keys and mouse to the guest:
` + console.ViewerHelp + `.

--external opens a VNC viewer instead: the one set as viewer in config.toml, or the first of
vncviewer (TigerVNC), remote-viewer and gvncviewer. TigerVNC and remote-viewer connect to the VM's
unix socket; other viewers get a port on 127.0.0.1 that vlab opens for them alone, protected by a
one-time VNC password that vlab sets through QMP and hands to the viewer in a 0600 file, never on
its command line. Sessions open at the same time share that password; the last one to end retires
it. --external --json prints that endpoint as {"host","port","password"} for any RFB client and
keeps it open until vlab is interrupted.

Without a terminal (started from a launcher or a script) vlab vnc opens the external viewer when
there is a graphical session.

Without a tablet (legacy guests with PS/2 only) the guest's pointer follows mouse movements but
not positions: it does not line up with yours.`,
		Example: `  vlab vnc web
  vlab vnc web --external
  vlab vnc web --external --json`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error { return a.vnc(cmd, args[0], o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.external, "external", false, "open an external VNC viewer (or, with --json, an endpoint) instead of the built-in one")
	f.BoolVar(&o.asJSON, "json", false, `with --external: print {"host","port","password"} and keep the endpoint open until interrupted`)
	f.StringVar(&o.viewer, "viewer", "", "external viewer command (overrides viewer in config.toml); words may use {socket}, {host}, {port}, {display}, {passwordfile} (a 0600 vncpasswd file), {title}")
	f.StringVar(&o.graphics, "graphics", "", "how the built-in viewer draws: sixel, kitty or blocks (default: ask the terminal; or set VLAB_GRAPHICS)")
	return cmd
}

// vnc shows VM name's screen as o asks: in this terminal, in an external
// viewer, or as an endpoint for any RFB client.
func (a *app) vnc(cmd *cobra.Command, name string, o vncOptions) error {
	g, err := viewerGraphics(o.graphics)
	if err != nil {
		return err
	}
	if o.asJSON && !o.external {
		return usageError{errors.New("--json prints the --external endpoint: use --external --json")}
	}
	s, err := a.open()
	if err != nil {
		return err
	}
	d, err := s.VNCDisplay(cmd.Context(), name)
	if err != nil {
		return err
	}
	switch {
	case o.asJSON:
		return serveEndpoint(cmd, d)
	case o.external:
		vw, err := console.FindViewer(viewerCommand(s, o.viewer))
		if err != nil {
			return fmt.Errorf("vnc %q: %w", name, err)
		}
		if !console.GraphicalSession() {
			return fmt.Errorf("vnc %q: %s needs a graphical session (DISPLAY and WAYLAND_DISPLAY are unset): use `vlab vnc %s` in this terminal, or --external --json for a remote client", name, vw.Name, name)
		}
		return openExternal(cmd, d, vw)
	}
	if !term.IsTerminal(os.Stdin.Fd()) || !term.IsTerminal(os.Stdout.Fd()) {
		// No terminal to draw in: the next best is an external
		// viewer, when there is a graphical session to show it.
		if console.GraphicalSession() {
			if vw, err := console.FindViewer(viewerCommand(s, o.viewer)); err == nil {
				return openExternal(cmd, d, vw)
			}
		}
		return fmt.Errorf("vnc %q: the built-in viewer needs a terminal: use --external for a VNC viewer, or --external --json for an endpoint", name)
	}
	err = screen(d).View(cmd.Context(), g, os.Stdin, os.Stdout)
	switch {
	case errors.Is(err, console.ErrSessionEnded):
		return fmt.Errorf("vnc %q: %w (see `vlab show %s`)", name, err, name)
	case err != nil:
		return fmt.Errorf("vnc %q: %w", name, err)
	}
	return nil
}

// screen is d as package console takes it.
func screen(d machine.VNCDisplay) console.Screen {
	return console.Screen{
		Title: d.Name, Socket: d.Socket, Protected: d.Protected,
		PasswordFile: d.PasswordFile, Dir: d.Run, SetPassword: d.SetPassword,
	}
}

// serveEndpoint is --external --json: it prints a loopback endpoint for d
// and serves it until vlab is interrupted.
func serveEndpoint(cmd *cobra.Command, d machine.VNCDisplay) error {
	ctx := cmd.Context()
	ep, err := screen(d).OpenEndpoint(ctx)
	if err != nil {
		return fmt.Errorf("vnc %q: %w", d.Name, err)
	}
	defer ep.Close()
	if err := printResult(cmd.OutOrStdout(), struct {
		Host     string `json:"host"`
		Port     int    `json:"port"`
		Password string `json:"password"`
	}{ep.Host, ep.Port, ep.Password}); err != nil {
		return err
	}
	if err := ep.Serve(ctx); err != nil {
		return fmt.Errorf("vnc %q: %w", d.Name, err)
	}
	return nil
}

// openExternal shows d in the external viewer vw until its window closes.
func openExternal(cmd *cobra.Command, d machine.VNCDisplay, vw *console.ExternalViewer) error {
	x, err := vw.Start(cmd.Context(), screen(d))
	if err != nil {
		return fmt.Errorf("vnc %q: %w", d.Name, err)
	}
	if ep := x.Endpoint; ep != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s connects to %s:%d; if it asks, the one-time password is %s\n", vw.Name, ep.Host, ep.Port, ep.Password)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "opened %s on %s's screen; close its window to return\n", vw.Name, d.Name)
	if err := x.Wait(cmd.Context()); err != nil {
		return fmt.Errorf("vnc %q: %w", d.Name, err)
	}
	return nil
}

// viewerCommand is the --viewer flag, else viewer from config.toml.
func viewerCommand(s *machine.Store, flag string) string {
	if flag != "" {
		return flag
	}
	return s.ConfiguredViewer()
}
