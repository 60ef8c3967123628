package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"vlab/machine"
)

// exitStatus carries a guest command's exit status out of `vlab exec` and
// `vlab ssh NAME -- CMD` (exitCode in root.go returns it).
type exitStatus struct{ code int }

func (e exitStatus) Error() string { return fmt.Sprintf("command exited with status %d", e.code) }
func (e exitStatus) ExitCode() int { return e.code }

// runSSH runs ssh/scp with vlab's stdio; a remote failure becomes exitStatus.
func runSSH(cmd *cobra.Command, bin string, args []string) error {
	return runSSHInput(cmd, bin, args, os.Stdin)
}

// runSSHInput is runSSH with stdin from in.
func runSSHInput(cmd *cobra.Command, bin string, args []string, in io.Reader) error {
	path, err := exec.LookPath(bin)
	if err != nil {
		return fmt.Errorf("%s not found: install openssh-client (apt-get install openssh-client)", bin)
	}
	c := exec.CommandContext(cmd.Context(), path, args...)
	c.Stdin, c.Stdout, c.Stderr = in, cmd.OutOrStdout(), cmd.ErrOrStderr()
	err = c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return exitStatus{ee.ExitCode()}
	}
	return err
}

func (a *app) sshCmd() *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "ssh NAME [-- CMD...]",
		Short: "Open a shell in a running VM over SSH (or run CMD), with vlab's key and the VM's known host key",
		Example: `  vlab ssh dev
  vlab ssh dev -- uname -a`,
		Args: func(cmd *cobra.Command, args []string) error {
			n := len(args)
			if at := cmd.ArgsLenAtDash(); at >= 0 {
				n = at
			}
			if n != 1 {
				return usageError{fmt.Errorf("ssh takes NAME, then a command after -- (got %d arguments before --): see `%s --help`", n, cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.open()
			if err != nil {
				return err
			}
			t, err := s.SSHTarget(cmd.Context(), args[0], user)
			if err != nil {
				return err
			}
			command := strings.Join(args[1:], " ")
			tty := command == "" && isTerminal(os.Stdin) && isTerminal(cmd.OutOrStdout())
			return runSSH(cmd, "ssh", t.SSHArgs(tty, command))
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "log in as this user (default: the VM's, vlab)")
	return cmd
}

func (a *app) execCmd() *cobra.Command {
	var user, via string
	cmd := &cobra.Command{
		Use:   "exec NAME -- CMD [ARG...]",
		Short: "Run a command in a running VM and exit with its status (each argument stays one argument)",
		Long: `Run a command in a running VM and exit with its status, its output on vlab's.
Each argument stays one argument: no shell in the guest parses them.

The command goes through the QEMU guest agent when the VM has its channel
(Linux profiles and cloud images) and the agent answers within a few
seconds, through SSH otherwise (--via picks one). Through the agent it runs
as the same user as over SSH (runuser, in that user's home), its output
arrives when it ends (at most 16 MiB per stream with QEMU 7.2's agent), and
stdin (when it is not a terminal) is handed over whole, up to 8 MiB.`,
		Example: `  vlab exec dev -- ls -l "/home/vlab/my file"
  vlab exec --via ssh dev -- sh -c 'echo $SSH_CONNECTION'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 || cmd.ArgsLenAtDash() != 1 {
				return usageError{fmt.Errorf("exec takes NAME -- CMD [ARG...]: see `%s --help`", cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkVia(via); err != nil {
				return err
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			var in io.Reader = os.Stdin
			if useAgent(cmd, s, args[0], via) {
				var stdin []byte
				if !isTerminal(os.Stdin) {
					if stdin, err = io.ReadAll(io.LimitReader(os.Stdin, machine.AgentExecMaxInput+1)); err != nil {
						return fmt.Errorf("exec: read stdin: %w", err)
					}
				}
				switch {
				case len(stdin) > machine.AgentExecMaxInput && via == viaAuto:
					in = io.MultiReader(bytes.NewReader(stdin), os.Stdin) // too much for the agent: SSH streams it
				default:
					err := agentExec(cmd, s, args[0], user, args[1:], stdin)
					if via == viaAgent || !errors.Is(err, machine.ErrAgentExec) {
						return err
					}
					in = bytes.NewReader(stdin) // the agent could not run it: SSH gets the same input
				}
			}
			t, err := s.SSHTarget(cmd.Context(), args[0], user)
			if err != nil {
				return err
			}
			return runSSHInput(cmd, "ssh", t.SSHArgs(false, machine.ShellQuote(args[1:])), in)
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "run as this user (default: the VM's, vlab)")
	viaFlag(cmd, &via)
	return cmd
}

// Ways to reach a guest (--via).
const (
	viaAuto  = "auto"
	viaAgent = "agent"
	viaSSH   = "ssh"
)

func viaFlag(cmd *cobra.Command, via *string) {
	cmd.Flags().StringVar(via, "via", viaAuto, "auto (the guest agent when it answers, else ssh), agent or ssh")
	_ = cmd.RegisterFlagCompletionFunc("via", cobra.FixedCompletions([]string{viaAuto, viaAgent, viaSSH}, cobra.ShellCompDirectiveNoFileComp))
}

func checkVia(via string) error {
	switch via {
	case viaAuto, viaAgent, viaSSH:
		return nil
	}
	return usageError{fmt.Errorf("--via %q: use auto, agent or ssh", via)}
}

// useAgent reports whether to go through VM name's guest agent: always
// with --via agent (its errors then say why it cannot), with auto when it
// answers guest-ping within machine.AgentProbeTimeout.
func useAgent(cmd *cobra.Command, s *machine.Store, name, via string) bool {
	switch via {
	case viaAgent:
		return true
	case viaSSH:
		return false
	}
	return s.AgentPing(cmd.Context(), name) == nil
}

// agentExec runs argv through the guest agent with vlab's stdout and
// stderr; a non-zero status becomes exitStatus.
func agentExec(cmd *cobra.Command, s *machine.Store, name, user string, argv []string, stdin []byte) error {
	r, err := s.AgentExec(cmd.Context(), name, user, argv, stdin)
	if err != nil {
		return err
	}
	cmd.OutOrStdout().Write(r.Stdout)
	cmd.ErrOrStderr().Write(r.Stderr)
	if r.Truncated {
		fmt.Fprintf(cmd.ErrOrStderr(), "vlab: the guest agent cut the output at 16 MiB: run it with --via ssh for all of it\n")
	}
	if r.Exit != 0 {
		return exitStatus{r.Exit}
	}
	return nil
}

// splitVMPath splits "NAME:PATH"; a path with a slash before the colon (or
// none) is a host path.
func splitVMPath(s string) (vm, p string, ok bool) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || strings.Contains(s[:i], "/") {
		return "", s, false
	}
	return s[:i], s[i+1:], true
}

func (a *app) cpCmd() *cobra.Command {
	var user, via string
	cmd := &cobra.Command{
		Use:   "cp [NAME:]SRC [NAME:]DST",
		Short: "Copy files and folders between the host and a running VM (either way)",
		Long: `Copy files and folders between the host and a running VM, either way, like
scp -r: into DST when it is a folder, else as DST. Relative guest paths start
in the login user's home.

The copy goes through the QEMU guest agent when the VM has its channel and
the agent answers (tar in the guest, moved in 1 MiB chunks through a file in
the guest's /tmp; the guest needs tar and runuser), through scp otherwise
(--via picks one). What comes from the guest is checked: nothing lands
outside DST, and nothing is written through a symlink.`,
		Example: `  vlab cp ./project dev:work/
  vlab cp "dev:/var/log/my app.log" .
  vlab cp --via ssh dev:notes.txt /tmp/`,
		Args: exactArgs("SRC", "DST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkVia(via); err != nil {
				return err
			}
			srcVM, src, srcRemote := splitVMPath(args[0])
			dstVM, dst, dstRemote := splitVMPath(args[1])
			switch {
			case srcRemote == dstRemote:
				return usageError{errors.New("cp: exactly one side must be in a VM, written NAME:PATH (e.g. vlab cp file.txt dev:/tmp/)")}
			case (srcRemote && src == "") || (dstRemote && dst == "") || (!srcRemote && src == "") || (!dstRemote && dst == ""):
				return usageError{errors.New("cp: empty path: give NAME:PATH with a path (e.g. dev:/tmp/ or dev:.)")}
			}
			name := srcVM
			if dstRemote {
				name = dstVM
			}
			if !srcRemote && !machine.LocalExists(src) {
				return usageError{fmt.Errorf("cp: %s does not exist on the host: check the path", src)}
			}
			s, err := a.open()
			if err != nil {
				return err
			}
			if useAgent(cmd, s, name, via) {
				if srcRemote {
					err = s.AgentCopyOut(cmd.Context(), name, user, src, dst)
				} else {
					err = s.AgentCopyIn(cmd.Context(), name, user, src, dst)
				}
				if via == viaAgent || !errors.Is(err, machine.ErrAgentExec) {
					return err
				}
			}
			t, err := s.SSHTarget(cmd.Context(), name, user)
			if err != nil {
				return err
			}
			recursive := true // folders and files alike; scp -r copies a file as a file
			if srcRemote {
				src = t.Remote(src)
			}
			if dstRemote {
				dst = t.Remote(dst)
			}
			if err := runSSH(cmd, "scp", t.SCPArgs(recursive, src, dst)); err != nil {
				var x exitStatus
				if errors.As(err, &x) {
					return fmt.Errorf("cp %s %s: scp failed (status %d): check both paths", args[0], args[1], x.code)
				}
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "copy as this user (default: the VM's, vlab)")
	viaFlag(cmd, &via)
	return cmd
}
