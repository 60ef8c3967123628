package main

import (
	"errors"
	"fmt"
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
	path, err := exec.LookPath(bin)
	if err != nil {
		return fmt.Errorf("%s not found: install openssh-client (apt-get install openssh-client)", bin)
	}
	c := exec.CommandContext(cmd.Context(), path, args...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr()
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
	var user string
	cmd := &cobra.Command{
		Use:     "exec NAME -- CMD [ARG...]",
		Short:   "Run a command in a running VM and exit with its status (each argument stays one argument)",
		Example: `  vlab exec dev -- ls -l "/home/vlab/my file"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 || cmd.ArgsLenAtDash() != 1 {
				return usageError{fmt.Errorf("exec takes NAME -- CMD [ARG...]: see `%s --help`", cmd.CommandPath())}
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
			return runSSH(cmd, "ssh", t.SSHArgs(false, machine.ShellQuote(args[1:])))
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "run as this user (default: the VM's, vlab)")
	return cmd
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
	var user string
	cmd := &cobra.Command{
		Use:   "cp [NAME:]SRC [NAME:]DST",
		Short: "Copy files and folders between the host and a running VM (either way)",
		Example: `  vlab cp ./project dev:work/
  vlab cp "dev:/var/log/my app.log" .`,
		Args: exactArgs("SRC", "DST"),
		RunE: func(cmd *cobra.Command, args []string) error {
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
	return cmd
}
