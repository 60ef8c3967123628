package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"vlab/console"
	"vlab/emulator"
	"vlab/machine"
)

// vncTimeout bounds connecting to a VM's VNC or QMP socket (machine's
// screenTimeout for a screenshot).
const vncTimeout = 15 * time.Second

func (a *app) vncCmd() *cobra.Command {
	var external, asJSON bool
	var viewer, graphics string
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
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := viewerGraphics(graphics)
			if err != nil {
				return err
			}
			if asJSON && !external {
				return usageError{errors.New("--json prints the --external endpoint: use --external --json")}
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			name := args[0]
			if err := vncReady(cmd.Context(), s, name); err != nil {
				return err
			}
			p := s.Paths(name)
			switch {
			case asJSON:
				return serveEndpoint(cmd, s, name)
			case external:
				vw, err := console.FindViewer(viewerCommand(s, viewer))
				if err != nil {
					return fmt.Errorf("vnc %q: %w", name, err)
				}
				if !graphicalSession() {
					return fmt.Errorf("vnc %q: %s needs a graphical session (DISPLAY and WAYLAND_DISPLAY are unset): use `vlab vnc %s` in this terminal, or --external --json for a remote client", name, vw.Name, name)
				}
				return openExternal(cmd, s, name, vw)
			}
			if !term.IsTerminal(os.Stdin.Fd()) || !term.IsTerminal(os.Stdout.Fd()) {
				// No terminal to draw in: the next best is an external
				// viewer, when there is a graphical session to show it.
				if graphicalSession() {
					if vw, err := console.FindViewer(viewerCommand(s, viewer)); err == nil {
						return openExternal(cmd, s, name, vw)
					}
				}
				return fmt.Errorf("vnc %q: the built-in viewer needs a terminal: use --external for a VNC viewer, or --external --json for an endpoint", name)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), vncTimeout)
			v, err := console.DialVNC(ctx, p.VNC, console.VNCOptions{})
			cancel()
			if err != nil {
				return fmt.Errorf("vnc %q: %w", name, err)
			}
			defer v.Close()
			err = (&console.Viewer{VNC: v, Title: name, Graphics: g}).Run()
			if errors.Is(err, console.ErrSessionEnded) {
				return fmt.Errorf("vnc %q: %w (see `vlab show %s`)", name, err, name)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&external, "external", false, "open an external VNC viewer (or, with --json, an endpoint) instead of the built-in one")
	f.BoolVar(&asJSON, "json", false, `with --external: print {"host","port","password"} and keep the endpoint open until interrupted`)
	f.StringVar(&viewer, "viewer", "", "external viewer command (overrides viewer in config.toml); words may use {socket}, {host}, {port}, {display}, {passwordfile} (a 0600 vncpasswd file), {title}")
	f.StringVar(&graphics, "graphics", "", "how the built-in viewer draws: sixel, kitty or blocks (default: ask the terminal; or set VLAB_GRAPHICS)")
	return cmd
}

// vncReady checks that name runs with a graphical console.
func vncReady(ctx context.Context, s *machine.Store, name string) error {
	spec, err := s.Load(name)
	if err != nil {
		return err
	}
	if spec.Display != emulator.DisplayVNC {
		return fmt.Errorf("vnc %q: the vm has no graphical console (display %s): use `vlab console %s`, or set display = \"vnc\" in its machine.toml", name, spec.Display, name)
	}
	return s.RequireActive(ctx, "vnc", name)
}

// setVNCPassword returns the function that sets the password of name's
// password-protected VNC display through QMP.
func setVNCPassword(s *machine.Store, name string) console.SetPasswordFunc {
	return func(ctx context.Context, pw string) error {
		ctx, cancel := context.WithTimeout(ctx, vncTimeout)
		defer cancel()
		return s.QMP(ctx, name, "set_password", map[string]any{
			"protocol": "vnc", "password": pw, "display": emulator.VNCExternalID,
		}, nil)
	}
}

// openEndpoint opens name's loopback endpoint and relays connections
// until ctx ends.
func openEndpoint(ctx context.Context, s *machine.Store, name string) (*console.Endpoint, <-chan error, error) {
	p := s.Paths(name)
	ep, err := console.OpenEndpoint(ctx, emulator.ExternalVNCSocket(p.VNC), p.VNCPass, setVNCPassword(s, name))
	if err != nil {
		return nil, nil, fmt.Errorf("vnc %q: %w", name, err)
	}
	served := make(chan error, 1)
	go func() { served <- ep.Serve(ctx) }()
	return ep, served, nil
}

// serveEndpoint is --external --json.
func serveEndpoint(cmd *cobra.Command, s *machine.Store, name string) error {
	ctx := cmd.Context()
	ep, served, err := openEndpoint(ctx, s, name)
	if err != nil {
		return err
	}
	defer ep.Close()
	if err := printResult(cmd.OutOrStdout(), struct {
		Host     string `json:"host"`
		Port     int    `json:"port"`
		Password string `json:"password"`
	}{ep.Host, ep.Port, ep.Password}); err != nil {
		return err
	}
	if err := <-served; err != nil {
		return fmt.Errorf("vnc %q: %w", name, err)
	}
	return nil
}

// openExternal starts the external viewer vw on name's screen and waits
// for it to close.
func openExternal(cmd *cobra.Command, s *machine.Store, name string, vw *console.ExternalViewer) error {
	p := s.Paths(name)
	target := console.Target{Socket: p.VNC, Title: name}
	if !vw.UsesSocket() {
		ep, _, err := openEndpoint(cmd.Context(), s, name)
		if err != nil {
			return err
		}
		defer ep.Close()
		target = ep.Target(name)
		fmt.Fprintf(cmd.ErrOrStderr(), "%s connects to %s:%d; if it asks, the one-time password is %s\n", vw.Name, ep.Host, ep.Port, ep.Password)
	}
	c, cleanup, err := vw.Command(target, p.Run)
	if err != nil {
		return fmt.Errorf("vnc %q: %w", name, err)
	}
	defer cleanup()
	// Viewers log chattily: keep the tail for an error message.
	var logTail tailBuffer
	c.Stdout, c.Stderr = &logTail, &logTail
	if err := c.Start(); err != nil {
		return fmt.Errorf("vnc %q: start %s: %w", name, vw.Name, err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "opened %s on %s's screen; close its window to return\n", vw.Name, name)
	waited := make(chan error, 1)
	go func() { waited <- c.Wait() }()
	select {
	case err = <-waited:
	case <-cmd.Context().Done():
		_ = c.Process.Signal(os.Interrupt)
		<-waited
		return nil
	}
	if err != nil {
		return fmt.Errorf("vnc %q: %s: %w: %s", name, vw.Name, err, oneLine(logTail.String()))
	}
	return nil
}

// graphicalSession says whether an external viewer has a screen to open on.
func graphicalSession() bool {
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}

// viewerCommand is the --viewer flag, else viewer from config.toml.
func viewerCommand(s *machine.Store, flag string) string {
	if flag != "" {
		return flag
	}
	return configuredViewer(s)
}

// tailBuffer keeps the last 300 bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 300 {
		t.buf = t.buf[len(t.buf)-300:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// configuredViewer reads viewer from config.toml ("" when unset).
func configuredViewer(s *machine.Store) string {
	var cfg struct {
		Viewer string `toml:"viewer"`
	}
	_, _ = toml.DecodeFile(filepath.Join(s.Dirs().Config, "config.toml"), &cfg)
	return cfg.Viewer
}
