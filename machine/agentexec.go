package machine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"vlab/emulator"
)

// AgentExecMaxInput bounds the stdin `vlab exec` hands the guest agent in
// one piece (guest-exec's input-data).
const AgentExecMaxInput = 8 << 20

// ErrAgentExec is returned (wrapped) when the agent could not run a
// program at all (not installed, runuser missing): nothing ran, another
// way may work.
var ErrAgentExec = errors.New("the guest agent could not run the command")

// AgentResult is what a command run through the guest agent did.
type AgentResult struct {
	Stdout, Stderr []byte
	Exit           int
	// Truncated: the agent kept only the first 16 MiB of an output stream.
	Truncated bool
}

// asUser wraps argv so it runs as user in user's home folder, like a
// command over SSH: runuser (util-linux) sets HOME, USER and the ids; the
// arguments stay arguments ("$@"), no shell parses them.
func asUser(user string, argv []string) (string, []string) {
	return "runuser", append([]string{"-u", user, "--", "sh", "-c", `cd 2>/dev/null; exec "$@"`, "vlab"}, argv...)
}

// AgentExec runs argv as user ("" = the VM's login user, as for SSH) in
// running VM name through its guest agent, with stdin as its input, and
// returns its output and exit status. ctx bounds the whole run; the agent
// collects the output until the command ends.
func (s *Store) AgentExec(ctx context.Context, name, user string, argv []string, stdin []byte) (AgentResult, error) {
	if len(argv) == 0 || argv[0] == "" {
		return AgentResult{}, errors.New("exec: no command")
	}
	if len(stdin) > AgentExecMaxInput {
		return AgentResult{}, fmt.Errorf("exec: stdin is over %d MiB, more than the guest agent takes at once: use --via ssh", AgentExecMaxInput>>20)
	}
	user, err := s.guestUser(name, user)
	if err != nil {
		return AgentResult{}, err
	}
	c, err := s.agent(ctx, name)
	if err != nil {
		return AgentResult{}, err
	}
	defer c.close()
	return c.run(ctx, user, argv, stdin)
}

// guestUser is user, or the VM's login user when user is "".
func (s *Store) guestUser(name, user string) (string, error) {
	if user == "" {
		gi, _ := s.GuestInfoOf(name)
		return gi.User, nil
	}
	if err := ValidateUser(user); err != nil {
		return "", fmt.Errorf("vm %q: %w", name, err)
	}
	return user, nil
}

// run runs argv as user ("root": as the agent itself).
func (c *agentConn) run(ctx context.Context, user string, argv []string, stdin []byte) (AgentResult, error) {
	path, args := argv[0], argv[1:]
	if user != "root" {
		path, args = asUser(user, argv)
	}
	if args == nil {
		args = []string{}
	}
	st, err := c.Run(ctx, emulator.ExecRequest{Path: path, Args: args, Input: stdin})
	if err != nil {
		var ae *emulator.AgentError
		if errors.As(err, &ae) {
			return AgentResult{}, fmt.Errorf("vm %q: %w: %v", c.name, ErrAgentExec, err)
		}
		return AgentResult{}, fmt.Errorf("vm %q: %w", c.name, err)
	}
	return AgentResult{Stdout: st.Stdout, Stderr: st.Stderr, Exit: st.ExitCode, Truncated: st.OutTruncated || st.ErrTruncated}, nil
}

// runOK runs argv and turns a non-zero exit into an error carrying the
// command's stderr.
func (c *agentConn) runOK(ctx context.Context, user string, argv []string, stdin []byte) (AgentResult, error) {
	r, err := c.run(ctx, user, argv, stdin)
	if err != nil {
		return r, err
	}
	if r.Exit != 0 {
		msg := strings.TrimSpace(string(r.Stderr))
		if msg == "" {
			msg = fmt.Sprintf("%s exited with status %d", argv[0], r.Exit)
		}
		return r, errors.New(oneLine(clipText(msg, 500)))
	}
	return r, nil
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
