package machine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SSHTarget is how to reach a running VM's SSH server: through its
// loopback forward, as the VM's login user, with vlab's key, checking the
// host key vlab gave the guest (or, for VMs vlab did not seed, the one it
// first saw, kept per VM).
type SSHTarget struct {
	Name       string `json:"name"`
	User       string `json:"user"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	KnownHosts string `json:"known_hosts"`
	Alias      string `json:"host_key_alias"`
	Key        string `json:"identity"`
	Seeded     bool   `json:"seeded"` // the host key is vlab's own, not learnt on first use
}

// SSHTarget finds how to reach VM name over SSH. user "" means the VM's
// login user (vlab by default).
func (s *Store) SSHTarget(ctx context.Context, name, user string) (SSHTarget, error) {
	if err := ValidateName(name); err != nil {
		return SSHTarget{}, fmt.Errorf("ssh: %w", err)
	}
	st, err := s.Status(ctx, name)
	if err != nil {
		return SSHTarget{}, err
	}
	if !st.State.Active() {
		return SSHTarget{}, fmt.Errorf("ssh to vm %q: %w (%s): start it first with `vlab start %s`", name, ErrNotRunning, st.State, name)
	}
	ni, err := s.Network(ctx, name)
	if err != nil {
		return SSHTarget{}, err
	}
	t := SSHTarget{Name: name, Alias: hostAlias(name), KnownHosts: filepath.Join(s.Paths(name).Dir, knownHostsFile)}
	for _, n := range ni.NICs {
		for _, f := range n.Forwards {
			if f.Proto == "tcp" && f.GuestPort == 22 && f.Active && f.HostPort > 0 {
				t.Host, t.Port = f.HostAddr, f.HostPort
				break
			}
		}
		if t.Port != 0 {
			break
		}
	}
	if t.Port == 0 {
		return SSHTarget{}, fmt.Errorf("ssh to vm %q: %w to guest port 22: add one with `vlab net forward add %s tcp:auto:22`", name, ErrNoSSH, name)
	}
	if t.Host == "" || t.Host == "0.0.0.0" {
		t.Host = "127.0.0.1"
	}
	gi, seeded := s.GuestInfoOf(name)
	t.User, t.Seeded = gi.User, seeded
	if user != "" {
		if err := ValidateUser(user); err != nil {
			return SSHTarget{}, fmt.Errorf("ssh to vm %q: %w", name, err)
		}
		t.User = user
	}
	if t.Key, _, err = s.ClientKey(ctx); err != nil {
		return SSHTarget{}, err
	}
	return t, nil
}

// options are the ssh/scp options every connection uses: vlab's key (then
// the user's agent and default keys), never a password prompt, the VM's own
// known_hosts under a fixed alias (the forward's port changes per start).
func (t SSHTarget) options() []string {
	strict := "yes"
	if !t.Seeded {
		strict = "accept-new" // a VM vlab did not seed: learn its key once, then hold it
	}
	return []string{
		"-o", "IdentityFile=" + sshConfigPath(t.Key),
		"-o", "BatchMode=yes",
		"-o", "PasswordAuthentication=no",
		"-o", "KbdInteractiveAuthentication=no",
		"-o", "UserKnownHostsFile=" + sshConfigPath(t.KnownHosts),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "HostKeyAlias=" + t.Alias,
		"-o", "StrictHostKeyChecking=" + strict,
		"-o", "ConnectTimeout=15",
		"-o", "LogLevel=ERROR",
	}
}

// sshConfigPath writes a file path as an ssh -o value: ssh splits the
// value at spaces (vlab's folders often have one) and expands %-tokens, so
// the path is double-quoted with its quotes and backslashes escaped and
// its '%' doubled.
func sshConfigPath(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "%", "%%")
	return `"` + r.Replace(p) + `"`
}

// SSHArgs is the argv (after "ssh") that runs command in the guest, or a
// login shell when command is empty. tty asks for a terminal.
func (t SSHTarget) SSHArgs(tty bool, command string) []string {
	args := t.options()
	args = append(args, "-p", strconv.Itoa(t.Port))
	if tty {
		args = append(args, "-t")
	} else {
		args = append(args, "-T")
	}
	args = append(args, "-l", t.User, t.Host)
	if command != "" {
		args = append(args, "--", command)
	}
	return args
}

// SCPArgs is the argv (after "scp") that copies src to dst; either may be
// Remote(path). scp speaks SFTP (OpenSSH 9), so no guest shell sees the
// names: spaces and quotes stay part of them.
func (t SSHTarget) SCPArgs(recursive bool, src, dst string) []string {
	args := t.options()
	args = append(args, "-P", strconv.Itoa(t.Port), "-p", "-q")
	if recursive {
		args = append(args, "-r")
	}
	return append(args, "--", src, dst)
}

// Remote names path in the guest for SCPArgs.
func (t SSHTarget) Remote(path string) string {
	return t.User + "@" + t.Host + ":" + path
}

// ShellQuote quotes argv for a POSIX shell (the guest's login shell runs
// what ssh sends), so `vlab exec NAME -- CMD ARGS` keeps every argument.
func ShellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// LocalExists reports whether a host path exists (for cp's checks).
func LocalExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
