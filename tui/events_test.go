package tui

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"vlab/emulator"
	"vlab/tui/tuifake"
)

// countingModel is screenModel that also counts Update calls.
type countingModel struct {
	screenModel
	updates *atomic.Int64
}

func (c countingModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	c.updates.Add(1)
	_, cmd := c.screenModel.Model.Update(msg)
	return c, cmd
}

func (c countingModel) View() tea.View {
	v := c.screenModel.Model.View()
	c.last.Store(ansi.Strip(v.Content))
	return v
}

func newCountingFlow(t *testing.T, m *Model, w, h int) (*teatest.TestModel, *atomic.Int64) {
	last := &atomic.Value{}
	last.Store("")
	n := &atomic.Int64{}
	tm := teatest.NewTestModel(t, countingModel{screenModel{Model: m, last: last}, n}, teatest.WithInitialTermSize(w, h))
	flowScreens.Store(tm, last)
	return tm, n
}

// rowShows reports whether the screen's row of machine name shows state.
func rowShows(screen, name string, state State) bool {
	for _, l := range strings.Split(screen, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), name+" ") && strings.Contains(l, string(state)) {
			return true
		}
	}
	return false
}

func waitRow(t *testing.T, tm *teatest.TestModel, name string, state State) {
	t.Helper()
	v, _ := flowScreens.Load(tm)
	last := v.(*atomic.Value)
	teatest.WaitFor(t, tm.Output(), func([]byte) bool { return rowShows(last.Load().(string), name, state) },
		teatest.WithDuration(30*time.Second), teatest.WithCheckInterval(5*time.Millisecond))
}

// TestEventShowsAtOnce: a QMP event's content changes the row before the
// re-read of the machine returns, and only that machine is re-read.
func TestEventShowsAtOnce(t *testing.T) {
	f := demoService()
	h := newHarness(t, f, 100, 30)
	_, cmd := h.m.Update(changesMsg{[]Change{{Name: "web", Event: "STOP"}}})
	if i := h.m.list.index("web"); h.m.list.all[i].State != StatePaused {
		t.Fatalf("after STOP web shows %s before any re-read", h.m.list.all[i].State)
	}
	_, gets0 := f.Reads()
	h.run(cmd)
	lists, gets := f.Reads()
	if lists != 1 || gets != gets0+1 {
		t.Fatalf("an event of one VM caused %d lists and %d gets (want the first list only and one get)", lists, gets-gets0)
	}
}

// TestStateChangesArriveByEvent runs the real program on the fake's live
// change stream: QMP-like events from outside (pause, resume, power-off)
// and a machine defined and deleted by another process show up without a
// key press, each by re-reading only that machine.
func TestStateChangesArriveByEvent(t *testing.T) {
	f := demoService()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New(ctx, f, Options{Env: []string{"TERM=xterm-256color"}, StatsInterval: time.Hour})
	tm := newFlow(t, m, 120, 30)
	waitRow(t, tm, "web", StateRunning)

	f.Event("web", "STOP")
	waitRow(t, tm, "web", StatePaused)
	f.Event("web", "RESUME")
	waitRow(t, tm, "web", StateRunning)

	other := tuifake.Machine("made-elsewhere", emulator.ArchX86_64)
	f.Add(other) // as `vlab create` in another terminal
	waitRow(t, tm, "made-elsewhere", StateStopped)
	if lists, _ := f.Reads(); lists != 1 {
		t.Fatalf("the program listed every machine %d times; want once, at start", lists)
	}
	tm.Send(tea.KeyPressMsg{Code: 'q', Text: "q"})
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}

// TestIdleTUIDoesNotWake: with machines running (whose CPU% the TUI used
// to refresh on a timer) and in transition, an untouched TUI gets no
// message at all once it has settled: no ticks, no relists.
func TestIdleTUIDoesNotWake(t *testing.T) {
	f := demoService()
	f.SetState("arm-build", StateStarting) // used to be re-listed every 2 s
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New(ctx, f, Options{Env: []string{"TERM=xterm-256color"}, StatsInterval: time.Millisecond})
	tm, updates := newCountingFlow(t, m, 120, 30)
	waitRow(t, tm, "web", StateRunning)
	time.Sleep(300 * time.Millisecond) // settle: the first list, host limits, size
	before := updates.Load()
	time.Sleep(time.Second)
	if n := updates.Load() - before; n != 0 {
		t.Fatalf("the idle TUI got %d messages in a quiet second", n)
	}
	// The positive control: an event still wakes it.
	f.Event("web", "STOP")
	waitRow(t, tm, "web", StatePaused)
	if updates.Load() == before {
		t.Fatal("the event reached the screen without an Update")
	}
	tm.Send(tea.KeyPressMsg{Code: 'q', Text: "q"})
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}
