#!/usr/bin/env bash
# Measures the TUI with 200 defined machines (10 running): render time per
# frame (Go benchmarks), and the RSS and idle CPU of the real TUI process
# running in a tmux pane. Writes the "## TUI" section of bench/RESULTS.md.
#
#   bash bench/tui/run.sh             # two 60 s idle samples (~2.5 min)
#   IDLE_SECS=60 bash bench/tui/run.sh
#   VLAB_BIN=bin/vlab VLAB_WHAT="on 5 VMs, 2 running" bash bench/tui/run.sh
#                                     # also sample `vlab` (no arguments: the TUI) on the user's library
set -euo pipefail
cd "$(dirname "$0")/../.."

IDLE_SECS=${IDLE_SECS:-60}
SETTLE_SECS=${SETTLE_SECS:-3}
command -v tmux >/dev/null || { echo "run.sh: tmux is missing (make deps installs it)" >&2; exit 1; }

work=$(mktemp -d)
session="vlab-tuibench-$$"
cleanup() {
	tmux kill-session -t "$session" 2>/dev/null || true
	tmux kill-session -t "$session-vlab" 2>/dev/null || true
	tmux kill-session -t "$session-fast" 2>/dev/null || true
	tmux kill-session -t "$session-floor" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/tuibench" ./bench/tui

# sample SESSION: prints "RSS_KB CPU_PCT" of the pane's process over IDLE_SECS.
# CPU time is the sum over the process's threads of the first field of
# /proc/PID/task/TID/schedstat (nanoseconds on the CPU): utime+stime in
# /proc/PID/stat count in clock ticks (10 ms), too coarse for an idle TUI.
sample() {
	local sess=$1 pid t0 t1 c0 c1 rss
	pid=$(tmux display-message -p -t "$sess" '#{pane_pid}')
	sleep "$SETTLE_SECS"
	c0=$(cat /proc/"$pid"/task/*/schedstat | awk '{s += $1} END {print s}')
	t0=$(date +%s.%N)
	sleep "$IDLE_SECS"
	c1=$(cat /proc/"$pid"/task/*/schedstat | awk '{s += $1} END {print s}')
	t1=$(date +%s.%N)
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
	awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v rss="$rss" \
		'BEGIN { printf "%d %.4f\n", rss, (c1 - c0) / 1e9 / (t1 - t0) * 100 }'
}

# quit SESSION: q, then wait for the session (and maybe the tmux server) to go.
quit() {
	tmux send-keys -t "$1" q
	for _ in $(seq 50); do
		tmux has-session -t "$1" 2>/dev/null || break
		sleep 0.1
	done
	sleep 0.5
}

# The TUI over the fake library, as the user would see it: 120x40, TERM
# from tmux, alt screen, mouse on.
tmux new-session -d -s "$session" -x 120 -y 40 "exec $work/tuibench -serve"
read -r rss cpu < <(sample "$session")
tmux capture-pane -p -t "$session" | head -5
echo "tuibench -serve: RSS ${rss} kB, idle CPU ${cpu}% of one core over ${IDLE_SECS}s"
quit "$session"

args=(-report -rss-kb "$rss" -cpu-pct "$cpu" -idle-secs "$IDLE_SECS")

# The same at 30 FPS, to show what the frame rate costs when idle.
tmux new-session -d -s "$session-fast" -x 120 -y 40 "exec $work/tuibench -serve -fps 30"
read -r _ fcpu < <(sample "$session-fast")
echo "tuibench -serve -fps 30: idle CPU ${fcpu}% of one core"
quit "$session-fast"
args+=(-fps30-cpu-pct "$fcpu")

# The floor: a Go process that does nothing but wake up at the same rate.
tmux new-session -d -s "$session-floor" -x 120 -y 40 "exec $work/tuibench -floor"
read -r _ flcpu < <(sample "$session-floor")
echo "tuibench -floor: idle CPU ${flcpu}% of one core"
tmux kill-session -t "$session-floor" 2>/dev/null || true
args+=(-floor-cpu-pct "$flcpu")

# Optionally the real vlab TUI on whatever library this user has.
if [[ -n "${VLAB_BIN:-}" ]]; then
	tmux new-session -d -s "$session-vlab" -x 120 -y 40 "exec $VLAB_BIN"
	read -r vrss vcpu < <(sample "$session-vlab")
	echo "vlab: RSS ${vrss} kB, idle CPU ${vcpu}% of one core"
	quit "$session-vlab"
	args+=(-vlab-rss-kb "$vrss" -vlab-cpu-pct "$vcpu" -vlab-what "${VLAB_WHAT:-on the real library}")
fi

"$work/tuibench" "${args[@]}"
