// Package results writes one benchmark's section of bench/RESULTS.md,
// leaving the other sections as they are.
package results

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Machine describes the machine a benchmark ran on, for the record.
func Machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s, %s", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, time.Now().UTC().Format("2006-01-02"))
}

// Write replaces the section headed "## heading" in path (or appends it)
// with body.
func Write(path, heading, body string) error {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(data)
	if text == "" {
		text = "# Benchmark results\n\nRatios are measured side by side in one run; absolute times vary by machine.\n"
	}
	head := "## " + heading + "\n"
	section := head + "\n" + strings.TrimSpace(body) + "\n"
	if i := strings.Index(text, head); i >= 0 {
		end := len(text)
		if j := strings.Index(text[i+len(head):], "\n## "); j >= 0 {
			end = i + len(head) + j + 1
		}
		text = text[:i] + section + "\n" + strings.TrimLeft(text[end:], "\n")
	} else {
		text = strings.TrimRight(text, "\n") + "\n\n" + section
	}
	return os.WriteFile(path, []byte(strings.TrimRight(text, "\n")+"\n"), 0o644)
}
