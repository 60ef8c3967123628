// Command tuibench measures vlab's TUI with 200 defined machines (10
// running) on the in-memory fake library.
//
//	go run ./bench/tui -serve            # the TUI itself, for run.sh to watch in tmux
//	go run ./bench/tui -report -rss-kb N -cpu-pct P -idle-secs S
//	                                     # render benchmarks + RESULTS.md "## TUI"
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"vlab/bench/results"
	"vlab/tui"
)

func main() {
	serve := flag.Bool("serve", false, "run the TUI on a fake library of -vms machines")
	report := flag.Bool("report", false, "run the render benchmarks and write the TUI section of -out")
	vms := flag.Int("vms", 200, "machines in the library")
	running := flag.Int("running", 10, "running machines")
	rssKB := flag.Int("rss-kb", 0, "measured RSS of the TUI process (from run.sh)")
	cpuPct := flag.Float64("cpu-pct", -1, "measured idle CPU of the TUI process, % of one core (from run.sh)")
	idleSecs := flag.Int("idle-secs", 0, "length of the idle measurement (from run.sh)")
	fastCPU := flag.Float64("fps30-cpu-pct", -1, "idle CPU of the same TUI at 30 FPS (from run.sh)")
	vlabRSS := flag.Int("vlab-rss-kb", 0, "RSS of the real vlab TUI on the real library, if measured")
	vlabWhat := flag.String("vlab-what", "on the real library", "what library -vlab-* was measured on")
	vlabCPU := flag.Float64("vlab-cpu-pct", -1, "idle CPU of the real vlab TUI, if measured")
	out := flag.String("out", "bench/RESULTS.md", "results file")
	fps := flag.Int("fps", 0, "frame rate cap of -serve (0 = the TUI's default)")
	statsEvery := flag.Duration("stats", 0, "CPU% refresh interval of -serve (0 = the TUI's default)")
	demo := flag.Bool("demo", false, "with -serve: a small library of machines in every state (the screenshot)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of -serve to this file")
	floor := flag.Bool("floor", false, "do nothing but wake up -fps times a second (default 5): the idle floor of a Go program at that frame rate")
	floorCPU := flag.Float64("floor-cpu-pct", -1, "idle CPU of -floor (from run.sh)")
	flag.Parse()
	var err error
	switch {
	case *floor:
		runtime.GOMAXPROCS(1) // as tui.Run does
		runFloor(*fps)
	case *serve:
		if *cpuProfile != "" {
			f, ferr := os.Create(*cpuProfile)
			if ferr != nil {
				fmt.Fprintln(os.Stderr, "tuibench:", ferr)
				os.Exit(1)
			}
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		lib := library(*vms, *running)
		if *demo {
			lib = demoLibrary()
		}
		err = runServe(lib, *fps, *statsEvery)
	case *report:
		err = runReport(*out, *rssKB, *cpuPct, *fastCPU, *floorCPU, *idleSecs, *vlabRSS, *vlabCPU, *vlabWhat)
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tuibench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func runServe(lib tui.Service, fps int, stats time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return tui.Run(ctx, lib, tui.Options{FPS: fps, StatsInterval: stats})
}

// runFloor wakes up fps times a second and hands each tick to another
// goroutine, as Bubble Tea's renderer does, and nothing else.
func runFloor(fps int) {
	if fps <= 0 {
		fps = tui.DefaultFPS
	}
	t := time.NewTicker(time.Second / time.Duration(fps))
	ticks := make(chan time.Time, 1)
	go func() {
		for range ticks {
		}
	}()
	for now := range t.C {
		ticks <- now
	}
}

func runReport(out string, rssKB int, cpuPct, fastCPU, floorCPU float64, idleSecs, vlabRSS int, vlabCPU float64, vlabWhat string) error {
	rows := []struct {
		what string
		fn   func(*testing.B, size)
	}{
		{"idle frame (View only)", viewIdle},
		{"key press + frame", frameNavigate},
		{"live update: one VM's QMP event, its re-read + frame", frameRefresh},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "200 defined machines, 10 running, on the in-memory fake library (bench/tui). Targets: under 5 ms per frame,\n")
	fmt.Fprintf(&b, "idle CPU below nemu's 0.10 %% of a core, RSS under 30 MB. `bash bench/tui/run.sh` reproduces this section.\n\n")
	fmt.Fprintf(&b, "| frame | 80×24 | 200×60 |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |", r.what)
		for _, sz := range benchSizes {
			res := testing.Benchmark(func(tb *testing.B) { r.fn(tb, sz) })
			fmt.Fprintf(&b, " %.3f ms (%d allocs) |", float64(res.NsPerOp())/1e6, res.AllocsPerOp())
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	if rssKB > 0 {
		fmt.Fprintf(&b, "The TUI process (a 120×40 tmux pane, idle for %d s; RSS from /proc/PID/status, CPU time summed over its threads from /proc/PID/task/*/schedstat, in nanoseconds):\n\n", idleSecs)
		fmt.Fprintf(&b, "| process | RSS | idle CPU |\n|---|---|---|\n")
		fmt.Fprintf(&b, "| vlab TUI (tuibench -serve, defaults: 5 FPS, CPU%% of running VMs refreshed every 10 s), 200 fake machines, 10 running | %.1f MB | %.3f %% of one core |\n", float64(rssKB)/1024, cpuPct)
		if fastCPU >= 0 {
			fmt.Fprintf(&b, "| the same at 30 FPS (Options.FPS; Bubble Tea wakes up every frame even when idle) | | %.3f %% of one core |\n", fastCPU)
		}
		if floorCPU >= 0 {
			fmt.Fprintf(&b, "| a Go program that only wakes up 5 times a second, on one P as the TUI runs (tuibench -floor: a ticker and a channel send, what any 5 FPS Bubble Tea program pays) | | %.3f %% of one core |\n", floorCPU)
		}
		if vlabRSS > 0 {
			fmt.Fprintf(&b, "| `vlab` TUI (MachineService) %s | %.1f MB | %.3f %% of one core |\n", vlabWhat, float64(vlabRSS)/1024, vlabCPU)
		}
		fmt.Fprintf(&b, "| nemu with 50 VMs (the issue's figure, not measured here) | 11 MB | 0.10 %% of one core |\n\n")
	}
	fmt.Fprintf(&b, "Machine: %s.\n", results.Machine())
	if err := results.Write(out, "TUI", b.String()); err != nil {
		return err
	}
	fmt.Print(b.String())
	return nil
}
