package tui

import (
	"context"
	"strings"
	"testing"
	"time"
	"vlab/tui/tuifake"

	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
)

// harness drives a Model synchronously: it runs each Cmd to completion and
// feeds the resulting messages back into Update, like the Bubble Tea loop
// but deterministic. The change stream and the stats tick are off (tests
// trigger them by hand), so every Cmd returns promptly.
type harness struct {
	t       *testing.T
	m       *Model
	svc     *tuifake.Service
	quit    bool
	pending []chan tea.Msg // commands still waiting (serial reads, jobs held by a test)
}

func newHarness(t *testing.T, svc *tuifake.Service, w, h int) *harness {
	t.Helper()
	return newHarnessOpts(t, svc, w, h, Options{Env: []string{"TERM=xterm-256color"}, StatsInterval: time.Hour})
}

func newHarnessOpts(t *testing.T, svc *tuifake.Service, w, h int, opts Options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := New(ctx, svc, opts)
	m.changes = nil // no push stream: tests call h.send(changed(name))
	m.ticking = true
	hs := &harness{t: t, m: m, svc: svc}
	hs.send(tea.WindowSizeMsg{Width: w, Height: h})
	hs.run(m.Init())
	return hs
}

// send delivers one message and runs what it returns.
func (h *harness) send(msg tea.Msg) {
	h.t.Helper()
	_, cmd := h.m.Update(msg)
	h.run(cmd)
}

// run executes cmd and everything it leads to.
func (h *harness) run(cmd tea.Cmd) {
	h.t.Helper()
	queue := []tea.Cmd{cmd}
	for steps := 0; len(queue) > 0; steps++ {
		if steps > 10000 {
			h.t.Fatal("command loop does not settle")
		}
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		msg, ok := h.exec(c)
		if !ok {
			continue
		}
		switch msg := msg.(type) {
		case nil:
		case tea.BatchMsg:
			queue = append(queue, msg...)
		case tea.QuitMsg:
			h.quit = true
		case spinner.TickMsg:
			// animation only
		default:
			_, next := h.m.Update(msg)
			queue = append(queue, next)
		}
	}
}

// exec runs c; a command that has not answered after a moment (a serial
// read, a job a test holds) is kept pending and delivered by await.
func (h *harness) exec(c tea.Cmd) (tea.Msg, bool) {
	h.t.Helper()
	done := make(chan tea.Msg, 1)
	go func() { done <- c() }()
	select {
	case msg := <-done:
		return msg, true
	case <-time.After(300 * time.Millisecond):
		h.pending = append(h.pending, done)
		return nil, false
	}
}

// await delivers pending results until cond holds (a 10 s safety net ends
// a test whose condition never comes true).
func (h *harness) await(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("waiting for %s: never happened; screen:\n%s", what, h.screen())
		}
		delivered := false
		for i := 0; i < len(h.pending); i++ {
			select {
			case msg := <-h.pending[i]:
				h.pending = append(h.pending[:i], h.pending[i+1:]...)
				i--
				delivered = true
				h.run(func() tea.Msg { return msg })
			default:
			}
		}
		if !delivered {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// keyMsg builds the key press a terminal would send for s ("enter",
// "shift+tab", "ctrl+]", "K", "a").
func keyMsg(s string) tea.KeyPressMsg {
	special := map[string]rune{
		"enter": tea.KeyEnter, "esc": tea.KeyEscape, "tab": tea.KeyTab, "backspace": tea.KeyBackspace,
		"up": tea.KeyUp, "down": tea.KeyDown, "left": tea.KeyLeft, "right": tea.KeyRight,
		"pgup": tea.KeyPgUp, "pgdown": tea.KeyPgDown, "home": tea.KeyHome, "end": tea.KeyEnd, "space": tea.KeySpace,
	}
	var mod tea.KeyMod
	rest := s
	for {
		switch {
		case strings.HasPrefix(rest, "ctrl+") && len(rest) > 5:
			mod |= tea.ModCtrl
			rest = rest[5:]
			continue
		case strings.HasPrefix(rest, "shift+") && len(rest) > 6:
			mod |= tea.ModShift
			rest = rest[6:]
			continue
		}
		break
	}
	if c, ok := special[rest]; ok {
		k := tea.KeyPressMsg{Code: c, Mod: mod}
		if c == tea.KeySpace {
			k.Text = " "
		}
		return k
	}
	r := []rune(rest)[0]
	if mod != 0 {
		return tea.KeyPressMsg{Code: r, Mod: mod}
	}
	return tea.KeyPressMsg{Code: r, Text: rest}
}

// press sends keys one by one.
func (h *harness) press(keys ...string) {
	h.t.Helper()
	for _, k := range keys {
		h.send(keyMsg(k))
	}
}

// typeText types text character by character.
func (h *harness) typeText(s string) {
	h.t.Helper()
	for _, r := range s {
		h.send(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}

// screen is the rendered screen without colours.
func (h *harness) screen() string {
	return ansi.Strip(h.m.Render())
}

// requireScreen checks the screen's shape and compares it with the golden
// file testdata/<test name>.golden (refresh with go test ./tui -update).
func (h *harness) requireScreen() {
	h.t.Helper()
	out := h.m.Render()
	lines := strings.Split(out, "\n")
	if len(lines) != h.m.height {
		h.t.Errorf("screen has %d lines, want %d", len(lines), h.m.height)
	}
	for i, l := range lines {
		if w := ansi.StringWidth(l); w > h.m.width {
			h.t.Errorf("line %d is %d cells wide, more than %d: %q", i, w, h.m.width, ansi.Strip(l))
		}
	}
	golden.RequireEqual(h.t, []byte(ansi.Strip(out)))
}

// contains fails unless the screen shows every one of want.
func (h *harness) contains(want ...string) {
	h.t.Helper()
	s := h.screen()
	for _, w := range want {
		if !strings.Contains(s, w) {
			h.t.Fatalf("screen does not show %q:\n%s", w, s)
		}
	}
}

// lacks fails if the screen shows any of bad.
func (h *harness) lacks(bad ...string) {
	h.t.Helper()
	s := h.screen()
	for _, b := range bad {
		if strings.Contains(s, b) {
			h.t.Fatalf("screen shows %q:\n%s", b, s)
		}
	}
}

// sizes are the terminal sizes every screen is checked at.
var sizes = []struct {
	name string
	w, h int
}{{"80x24", 80, 24}, {"120x40", 120, 40}}

// changed is the message of a file change of the named machines, as the
// service's change stream delivers it.
func changed(names ...string) changesMsg {
	var cs []Change
	for _, n := range names {
		cs = append(cs, Change{Name: n})
	}
	return changesMsg{cs}
}
