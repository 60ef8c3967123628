package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"vlab/machine"
)

// Off a terminal the bar writes one line per 10% step, labelled, ending at
// 100%, however often the work reports.
func TestProgressBarLinesOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	b := newProgressBar(&buf, "copying disks")
	for i := 0; i <= 1000; i++ {
		b.update(float64(i)*1024, 1000*1024)
	}
	b.finish()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 11 {
		t.Fatalf("%d lines, want 11 (0%%, 10%% ... 100%%):\n%s", len(lines), buf.String())
	}
	for i, l := range lines {
		want := fmt.Sprintf("copying disks %3d%%", i*10)
		if !strings.HasPrefix(l, want) {
			t.Errorf("line %d = %q, want it to start %q", i, l, want)
		}
	}
	if size := machine.Size(1000 * 1024).Human(); !strings.Contains(lines[10], size+" / "+size) {
		t.Errorf("last line %q does not show the sizes", lines[10])
	}
}

// A step bar (QEMU job progress) shows a percentage only, no sizes; a
// report past the total is shown as 100%.
func TestStepBarShowsPercentOnly(t *testing.T) {
	var buf bytes.Buffer
	b := newStepBar(&buf, "saving snapshot")
	b.update(0, 1)
	b.update(3, 1)
	b.finish()
	if got, want := buf.String(), "saving snapshot   0%\nsaving snapshot 100%\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// On a terminal the bar is redrawn in place (carriage return, no newline)
// and finish ends its line; nothing is written before a report.
func TestProgressBarRedrawsOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	b := newStepBar(&buf, "loading snapshot")
	b.tty = true
	b.finish()
	if buf.Len() != 0 {
		t.Fatalf("finish without a report wrote %q", buf.String())
	}
	b.update(1, 4)
	b.update(2, 4)
	out := buf.String()
	if strings.Count(out, "\r") != 2 || strings.Contains(out, "\n") {
		t.Errorf("terminal output %q: want two in-place redraws and no newline", out)
	}
	if !strings.Contains(out, "loading snapshot ") || !strings.Contains(out, " 50%") {
		t.Errorf("terminal output %q: want the label and 50%%", out)
	}
	b.finish()
	if !strings.HasSuffix(buf.String(), "\n") {
		t.Errorf("finish did not end the bar's line: %q", buf.String())
	}
}

// A download says once where a resumed transfer picks up; with no total
// known it reports the bytes, not on every call.
func TestProgressBarDownload(t *testing.T) {
	var buf bytes.Buffer
	b := newProgressBar(&buf, "downloading")
	b.download(machine.Progress{Done: 2048, Total: -1, Resumed: 2048})
	b.download(machine.Progress{Done: 4096, Total: -1, Resumed: 2048})
	b.download(machine.Progress{Done: 8192, Total: -1, Resumed: 2048})
	b.finish()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "downloading: resuming at 2K" || !strings.HasPrefix(lines[1], "downloading  2K / ?") {
		t.Errorf("output %q; want the resume line, then one line of bytes", buf.String())
	}
}
