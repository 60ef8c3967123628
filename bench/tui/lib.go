package main

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"vlab/tui"
	"vlab/tui/tuifake"
)

// jitterService is the fake library whose running machines' CPU% moves on
// every stats refresh, as real guests' does (so idle frames are not all
// identical and the renderer really redraws them).
type jitterService struct {
	*tuifake.Service
}

func (j jitterService) Stats(ctx context.Context) ([]tui.Stats, error) {
	st, err := j.Service.Stats(ctx)
	for i := range st {
		st[i].CPUPercent = rand.Float64() * 30
		st[i].Uptime += time.Duration(rand.IntN(1000)) * time.Second
	}
	return st, err
}

// library returns a fake service with n machines, running of them running.
func library(n, running int) jitterService {
	f := tuifake.New()
	f.Populate(n, running)
	return jitterService{f}
}

// bench is a model over a fake library whose change stream the benchmark
// drives, plus the commands still waiting (the change wait, ticks).
type bench struct {
	m       *tui.Model
	svc     jitterService
	changes chan tui.Change
	pending []chan tea.Msg
}

type benchService struct {
	jitterService
	b *bench
}

func (s benchService) Changes(ctx context.Context) <-chan tui.Change { return s.b.changes }

// newBench returns a model over n machines (running of them running), sized
// w×h, with its first List applied.
func newBench(ctx context.Context, n, running, w, h int) *bench {
	b := &bench{svc: library(n, running), changes: make(chan tui.Change, 1)}
	b.m = tui.New(ctx, benchService{b.svc, b}, tui.Options{Env: []string{"TERM=xterm-256color"}, StatsInterval: time.Hour})
	b.m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	b.run(b.m.Init())
	b.settle()
	return b
}

// run starts cmd; its result is delivered by settle or deliver.
func (b *bench) run(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- cmd() }()
	b.pending = append(b.pending, done)
}

// settle delivers results until none arrives for a moment (setup only:
// the change wait never answers by itself).
func (b *bench) settle() {
	for b.deliver(100 * time.Millisecond) {
	}
}

// deliver waits up to d for one pending result and applies it.
func (b *bench) deliver(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		for i, p := range b.pending {
			select {
			case msg := <-p:
				b.pending = append(b.pending[:i], b.pending[i+1:]...)
				b.handle(msg)
				return true
			default:
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Microsecond)
	}
}

func (b *bench) handle(msg tea.Msg) {
	switch msg := msg.(type) {
	case nil:
	case tea.BatchMsg:
		for _, c := range msg {
			b.run(c)
		}
	default:
		_, next := b.m.Update(msg)
		b.run(next)
	}
}

// refresh is one live update: a QMP event of one running machine
// (answered by the model's change wait), the re-read of that machine it
// causes, and the Update that applies it.
func (b *bench) refresh() {
	b.changes <- tui.Change{Name: "vm-000", Event: "RESUME"}
	for i := 0; i < 3; i++ { // the change, the batch it returns, the Get result
		if !b.deliver(time.Minute) {
			panic("refresh: the model did not answer")
		}
	}
}

// The library the issue asks for: 200 machines, 10 of them running.
const (
	benchVMs     = 200
	benchRunning = 10
)

type size struct {
	name string
	w, h int
}

var benchSizes = []size{{"80x24", 80, 24}, {"200x60", 200, 60}}

// viewIdle is the frame Bubble Tea renders after an Update that changed
// nothing visible.
func viewIdle(b *testing.B, sz size) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bn := newBench(ctx, benchVMs, benchRunning, sz.w, sz.h)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = bn.m.View()
	}
}

// frameNavigate is a key press (cursor down, back to the top at the end)
// and the frame after it.
func frameNavigate(b *testing.B, sz size) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bn := newBench(ctx, benchVMs, benchRunning, sz.w, sz.h)
	down, top := tea.KeyPressMsg{Code: tea.KeyDown}, tea.KeyPressMsg{Code: 'g', Text: "g"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := down
		if i%benchVMs == benchVMs-1 {
			k = top
		}
		bn.m.Update(k)
		_ = bn.m.View()
	}
}

// frameRefresh is a live update: a change signal, the re-List of all 200
// machines, the Update applying it and the frame after it.
func frameRefresh(b *testing.B, sz size) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bn := newBench(ctx, benchVMs, benchRunning, sz.w, sz.h)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bn.refresh()
		_ = bn.m.View()
	}
}
