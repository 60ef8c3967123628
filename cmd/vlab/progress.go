package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"charm.land/bubbles/v2/progress"
	"charm.land/lipgloss/v2"

	"vlab/machine"
)

// progressBar is the one progress display of every long CLI operation
// (downloads, disk copies and conversions, import/export, snapshots, iso
// add). It writes to stderr only, so --json stdout stays one object:
// on a terminal a bar (bubbles' progress, the TUI's) redrawn in place;
// otherwise (logs, CI, tests) a line per 10%, so the output stays short.
// Its methods are safe to call from the goroutine doing the work.
type progressBar struct {
	mu      sync.Mutex
	w       io.Writer
	what    string // what is being done: "copying disks", "saving snapshot"
	bytes   bool   // done and total count bytes: show sizes and a rate
	tty     bool
	bar     progress.Model
	started time.Time
	resumed int64 // bytes that were there before this run (downloads)
	lastTen int   // the last 10% step printed (not on a terminal)
	lastAt  time.Time
	drawn   bool // a bar line is on the screen, unfinished
}

// newProgressBar shows the progress of work counted in bytes.
func newProgressBar(w io.Writer, what string) *progressBar {
	return &progressBar{
		w: w, what: what, bytes: true, tty: isTerminal(w), started: time.Now(), lastTen: -1,
		bar: progress.New(progress.WithDefaultBlend(), progress.WithoutPercentage(), progress.WithWidth(30)),
	}
}

// newStepBar shows the progress of work counted in steps whose size means
// nothing to a person (QEMU's job progress): a percentage only.
func newStepBar(w io.Writer, what string) *progressBar {
	b := newProgressBar(w, what)
	b.bytes = false
	return b
}

// update is a machine.ProgressFunc.
func (b *progressBar) update(done, total float64) { b.set(int64(done), int64(total)) }

// download is a machine.GetOptions/FetchOptions Progress func: it says once
// where a resumed download picks up.
func (b *progressBar) download(p machine.Progress) {
	b.mu.Lock()
	if p.Resumed > 0 && b.resumed == 0 {
		b.resumed = p.Resumed
		b.clearLocked()
		fmt.Fprintf(b.w, "%s: resuming at %s\n", b.what, machine.Size(p.Resumed).Human())
	}
	b.mu.Unlock()
	b.set(p.Done, p.Total)
}

// set reports done out of total (total <= 0: unknown).
func (b *progressBar) set(done, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	done = max(done, 0)
	pct := -1
	if total > 0 {
		pct = int(min(done*100/total, 100)) // a lying server must not break the bar
	}
	if b.tty {
		line := b.what + " "
		if pct >= 0 {
			line += b.bar.ViewAs(float64(pct)/100) + fmt.Sprintf(" %3d%%", pct)
		}
		line += b.amount(done, total)
		lipgloss.Fprint(b.w, "\r"+line+"\x1b[K")
		b.drawn = true
		return
	}
	if pct < 0 {
		// Unknown total: a line now and then, not per report.
		if now := time.Now(); now.Sub(b.lastAt) >= 5*time.Second {
			b.lastAt = now
			fmt.Fprintf(b.w, "%s%s\n", b.what, b.amount(done, total))
		}
		return
	}
	if pct/10 == b.lastTen {
		return
	}
	b.lastTen = pct / 10
	fmt.Fprintf(b.w, "%s %3d%%%s\n", b.what, pct, b.amount(done, total))
}

// amount is the " 12 MiB / 40 MiB  3 MiB/s" part of byte counts.
func (b *progressBar) amount(done, total int64) string {
	if !b.bytes {
		return ""
	}
	tot := "?"
	if total > 0 {
		tot = machine.Size(total).Human()
	}
	s := fmt.Sprintf("  %s / %s", machine.Size(done).Human(), tot)
	if el := time.Since(b.started).Seconds(); el > 0.5 && done > b.resumed {
		s += "  " + machine.Size(float64(done-b.resumed)/el).Human() + "/s"
	}
	return s
}

// finish ends the bar's line; call it when the work ends, done or not.
func (b *progressBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprintln(b.w)
		b.drawn = false
	}
}

func (b *progressBar) clearLocked() {
	if b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
		b.drawn = false
	}
}
