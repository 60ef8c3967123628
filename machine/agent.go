package machine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"vlab/emulator"
	"vlab/profiles"
)

// StopAgent is Stop's method when the guest powered off at its agent's
// guest-shutdown.
const StopAgent = "agent"

// ErrNoAgent is returned (wrapped) when a VM has no guest agent channel or
// its agent does not answer.
var ErrNoAgent = errors.New("no guest agent")

const (
	// AgentProbeTimeout bounds how long vlab waits for a guest agent to
	// answer before it takes another way (SSH, ACPI power-down).
	AgentProbeTimeout = 3 * time.Second
	// agentCallTimeout bounds one agent command that should be quick.
	agentCallTimeout = 30 * time.Second
)

// OfferAgent turns the guest agent channel on for spec when profile p is
// a Linux profile (their installs and cloud images carry qemu-guest-agent)
// and the board has a PCI bus for it. `vlab create` calls it; --agent
// overrides it.
func OfferAgent(spec *Spec, p profiles.Profile) bool {
	if p.Family != "linux" || !emulator.AgentSupported(spec.Arch, spec.Machine) {
		return false
	}
	spec.Agent = true
	return true
}

// agentConn is a connection to a VM's guest agent, held under the VM's
// agent lock (the agent serves one client at a time).
type agentConn struct {
	*emulator.Agent
	name string
	lock *fileLock
}

func (c *agentConn) close() {
	c.Agent.Close()
	c.lock.unlock()
}

// agent connects to the guest agent of running VM name and checks that it
// answers guest-ping within AgentProbeTimeout. Errors wrap ErrNoAgent when
// the VM has no channel or nothing answers on it.
func (s *Store) agent(ctx context.Context, name string) (*agentConn, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	spec, err := s.Load(name)
	if err != nil {
		return nil, err
	}
	if !spec.Agent {
		return nil, fmt.Errorf("vm %q: %w channel: turn it on with `vlab edit %s --agent on` and restart the vm", name, ErrNoAgent, name)
	}
	st, err := s.Status(ctx, name)
	if err != nil {
		return nil, err
	}
	if !st.State.Active() {
		return nil, fmt.Errorf("vm %q: %w (%s): start it first with `vlab start %s`", name, ErrNotRunning, st.State, name)
	}
	p := s.Paths(name)
	if fi, err := os.Lstat(p.Agent); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("vm %q: %w channel in this run (started before the agent was turned on?): restart the vm", name, ErrNoAgent)
	}
	// The guest opens its end of the channel when its agent runs: a closed
	// one means nothing will answer, so vlab does not wait for it.
	if open, known := s.agentPortOpen(ctx, name); known && !open {
		return nil, fmt.Errorf("vm %q: %w running in the guest (it has not opened the agent's channel): install and start qemu-guest-agent in the guest", name, ErrNoAgent)
	}
	lctx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	l, err := lock(lctx, p.AgentLock)
	if err != nil {
		return nil, fmt.Errorf("vm %q: guest agent busy: %w", name, err)
	}
	dctx, cancel2 := context.WithTimeout(ctx, AgentProbeTimeout)
	defer cancel2()
	ag, err := emulator.DialAgent(dctx, p.Agent)
	if err == nil {
		if err = ag.Ping(dctx); err != nil {
			ag.Close()
		}
	}
	if err != nil {
		l.unlock()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("vm %q: %w answering within %s (is qemu-guest-agent installed and running in the guest?): %v", name, ErrNoAgent, AgentProbeTimeout, err)
	}
	return &agentConn{Agent: ag, name: name, lock: l}, nil
}

// agentPortOpen asks QEMU whether the guest has opened the agent's
// virtio-serial port (query-chardev's frontend-open of the channel's
// chardev). known is false when QEMU could not tell.
func (s *Store) agentPortOpen(ctx context.Context, name string) (open, known bool) {
	qctx, cancel := context.WithTimeout(ctx, AgentProbeTimeout)
	defer cancel()
	var devs []emulator.Chardev
	err := s.withMonitor(qctx, name, func(m *emulator.Monitor) (err error) {
		devs, err = m.QueryChardev(qctx)
		return err
	})
	if err != nil {
		return false, false
	}
	for _, d := range devs {
		if d.Label == emulator.AgentChardevID {
			return d.FrontendOpen, true
		}
	}
	return false, false
}

// AgentPing reports whether VM name's guest agent answers.
func (s *Store) AgentPing(ctx context.Context, name string) error {
	c, err := s.agent(ctx, name)
	if err != nil {
		return err
	}
	c.close()
	return nil
}

// AgentFreezeStatus returns the guest agent's filesystem freeze state
// ("thawed" or "frozen").
func (s *Store) AgentFreezeStatus(ctx context.Context, name string) (string, error) {
	c, err := s.agent(ctx, name)
	if err != nil {
		return "", err
	}
	defer c.close()
	cctx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	return c.FSFreezeStatus(cctx)
}

// freezeDuring runs fn with VM name's guest filesystems frozen through its
// agent, when it has one that answers; otherwise fn runs alone (frozen 0).
// The thaw always runs, also when fn fails or ctx ends; a failed thaw is
// returned.
func (s *Store) freezeDuring(ctx context.Context, name string, fn func() error) (frozen int, err error) {
	c, aerr := s.agent(ctx, name)
	if aerr != nil {
		return 0, fn()
	}
	defer c.close()
	fctx, cancel := context.WithTimeout(ctx, 2*agentCallTimeout)
	frozen, ferr := c.FSFreeze(fctx)
	cancel()
	if ferr != nil {
		// A freeze that failed half-way (or whose reply was lost) may
		// have frozen some filesystems: thaw whatever is.
		s.thaw(ctx, c)
		return 0, fn()
	}
	err = fn()
	if terr := s.thaw(ctx, c); terr != nil {
		return frozen, errors.Join(err, fmt.Errorf("thaw the guest's filesystems (they may still be frozen: `vlab exec %s -- fsfreeze -u /`, or restart the vm): %w", name, terr))
	}
	return frozen, err
}

// thaw thaws the guest's filesystems, retrying a lost reply once.
func (s *Store) thaw(ctx context.Context, c *agentConn) error {
	var err error
	for range 2 {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), agentCallTimeout)
		_, err = c.FSThaw(tctx)
		if err == nil {
			cancel()
			return nil
		}
		st, serr := c.FSFreezeStatus(tctx)
		cancel()
		if serr == nil && st == "thawed" {
			return nil
		}
	}
	return err
}

// thawAfterRestore thaws a guest whose live snapshot was taken while its
// filesystems were frozen: the restored agent still holds them frozen.
func (s *Store) thawAfterRestore(ctx context.Context, name string) {
	c, err := s.agent(ctx, name)
	if err != nil {
		return
	}
	defer c.close()
	cctx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	if st, err := c.FSFreezeStatus(cctx); err == nil && st == "frozen" {
		_ = s.thaw(ctx, c)
	}
}

// agentShutdown asks VM name's guest agent to power the guest off and
// waits up to wait for QEMU to exit. It reports whether QEMU is gone; a VM
// without an answering agent is left alone (false). qemu-ga answers a
// guest-shutdown it carried out with silence and one whose shutdown(8)
// failed with an error (seen in a guest without logind: `shutdown +0`
// needs it); then the agent runs poweroff itself (systemctl as root works
// without logind).
func (s *Store) agentShutdown(ctx context.Context, name string, proc *emulator.Process, wait time.Duration) bool {
	c, err := s.agent(ctx, name)
	if err != nil {
		return false
	}
	defer c.close()
	refused := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		refused <- c.Shutdown(sctx, "powerdown")
	}()
	if wait <= 0 {
		wait = emulator.DefaultPowerdownTimeout
	}
	deadline := time.Now().Add(wait)
	for delay := 50 * time.Millisecond; time.Now().Before(deadline); delay = min(delay*2, time.Second) {
		if proc.Check() != emulator.LiveRunning {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case err := <-refused:
			if err != nil {
				ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, perr := c.Exec(ectx, emulator.ExecRequest{Path: "poweroff", Args: []string{}})
				cancel()
				if perr != nil {
					return false
				}
			}
		case <-time.After(delay):
		}
	}
	return proc.Check() != emulator.LiveRunning
}
