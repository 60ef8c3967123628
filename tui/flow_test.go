package tui

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"vlab/tui/tuifake"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"
)

// These flows run the real Bubble Tea program (teatest) against the fake
// service, with its live change stream on: create a machine through the
// wizard, start it, see it turn running, stop it, delete it with the
// confirmation.

// screenModel records each frame the program renders, so a flow can wait
// for what the screen shows (the terminal output itself is only the
// renderer's diffs).
type screenModel struct {
	*Model
	last *atomic.Value
}

func (s screenModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	_, cmd := s.Model.Update(msg)
	return s, cmd
}

func (s screenModel) View() tea.View {
	v := s.Model.View()
	s.last.Store(ansi.Strip(v.Content))
	return v
}

var flowScreens sync.Map // *teatest.TestModel → *atomic.Value

func newFlow(t *testing.T, m *Model, w, h int) *teatest.TestModel {
	last := &atomic.Value{}
	last.Store("")
	tm := teatest.NewTestModel(t, screenModel{Model: m, last: last}, teatest.WithInitialTermSize(w, h))
	flowScreens.Store(tm, last)
	return tm
}

func waitOutput(t *testing.T, tm *teatest.TestModel, what string) {
	t.Helper()
	v, _ := flowScreens.Load(tm)
	last := v.(*atomic.Value)
	teatest.WaitFor(t, tm.Output(), func([]byte) bool { return strings.Contains(last.Load().(string), what) },
		teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

func sendKeys(tm *teatest.TestModel, keys ...string) {
	for _, k := range keys {
		tm.Send(keyMsg(k))
	}
}

func TestFlowCreateStartStopDelete(t *testing.T) {
	f := tuifake.New()
	f.StartDelay = 300 * time.Millisecond // starting → running arrives through Changes
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New(ctx, f, Options{Env: []string{"TERM=xterm-256color"}, StatsInterval: time.Hour})
	tm := newFlow(t, m, 100, 30)

	waitOutput(t, tm, "No machines yet")
	sendKeys(tm, "n")
	waitOutput(t, tm, "What should the machine be called?")
	tm.Type("flowvm")
	waitOutput(t, tm, "available")
	sendKeys(tm, "enter")
	waitOutput(t, tm, "Which operating system")
	sendKeys(tm, "enter")
	waitOutput(t, tm, "How is the operating system installed?")
	sendKeys(tm, "left", "enter") // boot from: none (the last choice)
	waitOutput(t, tm, "Memory, CPUs and disk")
	sendKeys(tm, "enter")
	waitOutput(t, tm, "Network and display")
	sendKeys(tm, "enter")
	waitOutput(t, tm, "QEMU command line")
	sendKeys(tm, "enter")
	waitOutput(t, tm, "created flowvm")
	if vm, ok := f.VM("flowvm"); !ok || vm.State != StateStopped {
		t.Fatalf("after the wizard: %+v %v", vm, ok)
	}

	sendKeys(tm, "s")
	waitOutput(t, tm, "starting")
	waitOutput(t, tm, "● running")

	sendKeys(tm, "x")
	waitOutput(t, tm, "asked flowvm to power off")
	waitOutput(t, tm, "○ stopped")

	sendKeys(tm, "D")
	waitOutput(t, tm, "Delete flowvm?")
	sendKeys(tm, "y")
	waitOutput(t, tm, "flowvm deleted")
	waitOutput(t, tm, "No machines yet")

	sendKeys(tm, "q")
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(screenModel).Model
	if _, ok := f.VM("flowvm"); ok {
		t.Fatal("the machine still exists")
	}
	if len(fm.list.all) != 0 {
		t.Fatalf("the final list shows %d machines", len(fm.list.all))
	}
	want := []string{"Create flowvm", "Start flowvm", "Stop flowvm", "Delete flowvm"}
	var got []string
	for _, c := range f.Calls() {
		if !strings.HasPrefix(c, "PreviewCmdline") {
			got = append(got, c)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

// TestFlowOutsideChange checks that a machine started elsewhere (the CLI,
// another vlab) shows up through the change stream, with no key pressed.
func TestFlowOutsideChange(t *testing.T) {
	f := demoService()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New(ctx, f, Options{Env: []string{"TERM=xterm-256color"}, StatsInterval: time.Hour})
	tm := newFlow(t, m, 120, 40)
	waitOutput(t, tm, "arm-build")
	f.SetState("arm-build", StateRunning)
	waitOutput(t, tm, "2 running · 1 paused")
	f.SetState("web", StateStopped)
	f.SetState("arm-build", StateStopped)
	waitOutput(t, tm, "0 running · 1 paused")
	tm.Send(tea.QuitMsg{})
	tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
}
