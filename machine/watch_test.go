package machine

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"vlab/internal/fakeqemu"
)

// nextChange waits for a Change of VM name with event ev ("" for a file
// change) and fails the test if the stream gives something else for long.
func nextChange(t *testing.T, ch <-chan Change, name, ev string) {
	t.Helper()
	timeout := time.After(30 * time.Second) // a safety net, not a timing assertion
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatalf("stream closed waiting for %s %q", name, ev)
			}
			if c.Name == "" {
				t.Fatalf("a change without a VM name: %+v", c)
			}
			if c.Name == name && c.Event == ev {
				return
			}
		case <-timeout:
			t.Fatalf("no change %s %q", name, ev)
		}
	}
}

// TestWatchFollowsOtherProcesses: a Store watching the library sees what
// another Store (another vlab process) does, each change naming its VM:
// a VM created, started (its runtime folder and record appear, then QMP is
// followed), paused and resumed (the QMP events themselves), killed (the
// QEMU's end), and deleted.
func TestWatchFollowsOtherProcesses(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeNormal)
	other, err := Open(s.Dirs())
	if err != nil {
		t.Fatal(err)
	}
	other.host = s.host
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}

	createFake(t, other, "w1")
	nextChange(t, ch, "w1", "")
	if err := other.Start(ctx, "w1", StartOptions{}); err != nil {
		t.Fatal(err)
	}
	nextChange(t, ch, "w1", EventFollowing)
	if err := other.Pause(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	nextChange(t, ch, "w1", "STOP")
	if st, _ := EventState("STOP"); st != StatePaused {
		t.Fatalf("STOP means %s", st)
	}
	if err := other.Resume(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	nextChange(t, ch, "w1", "RESUME")

	// A crash: QEMU is killed; the watcher says so once the process is gone.
	st, err := other.Status(ctx, "w1")
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nextChange(t, ch, "w1", EventExit)
	if st, err := s.Status(ctx, "w1"); err != nil || st.State.Active() {
		t.Fatalf("after the exit change the VM is %s (%v)", st.State, err)
	}

	if err := other.Delete(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	nextChange(t, ch, "w1", "")
	if _, err := os.Stat(s.Paths("w1").Spec); !os.IsNotExist(err) {
		t.Fatal("the VM is still defined")
	}
	cancel()
	for range ch { // the stream closes when ctx ends
	}
}

func TestEventState(t *testing.T) {
	for ev, want := range map[string]State{"STOP": StatePaused, "RESUME": StateRunning, "SHUTDOWN": StateShuttingDown, "GUEST_PANICKED": StateCrashed} {
		if got, ok := EventState(ev); !ok || got != want {
			t.Errorf("%s → %s %v, want %s", ev, got, ok, want)
		}
	}
	if _, ok := EventState("RTC_CHANGE"); ok {
		t.Error("RTC_CHANGE says something about the state")
	}
}
