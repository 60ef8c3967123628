#!/usr/bin/env bash
# Measures the real `vlab` TUI (MachineService on a real library) idle with
# 0, 50 and 200 VMs defined, 5 of them running real QEMU (the x86_64 fixture
# kernel, started --paused so the guests cost no CPU): CPU % of one core and
# RSS, sampled from /proc/PID/stat (utime+stime), /proc/PID/task/*/schedstat
# (ns) and /proc/PID/status over IDLE_SECS (default 30) after SETTLE_SECS.
# Then the latency from `vlab pause` (another process) to the TUI's list
# showing "paused", read from the tmux pane (median of 5).
#
#   bash bench/tui/idle.sh             # prints one line per library size
set -euo pipefail
cd "$(dirname "$0")/../.."
IDLE_SECS=${IDLE_SECS:-30}
SETTLE_SECS=${SETTLE_SECS:-5}
KERNEL=${KERNEL:-$HOME/.cache/vlab-testdata/x86_64/vmlinuz}
INITRD=${INITRD:-$HOME/.cache/vlab-testdata/x86_64/initrd.img}
command -v tmux >/dev/null || { echo "idle.sh: tmux is missing (scripts/deps.sh installs it)" >&2; exit 1; }

work=$(mktemp -d /tmp/vtb.XXXX)
session="vlab-idle-$$"
export XDG_DATA_HOME=$work/d XDG_CONFIG_HOME=$work/c XDG_STATE_HOME=$work/s XDG_CACHE_HOME=$work/k XDG_RUNTIME_DIR=$work/r
mkdir -p -m 0700 "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_STATE_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR"
cleanup() {
	tmux kill-session -t "$session" 2>/dev/null || true
	for n in $("$work/vlab" list 2>/dev/null | awk 'NR>1 && $2 != "stopped" {print $1}'); do "$work/vlab" stop --force "$n" >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT
CGO_ENABLED=0 go build -o "$work/vlab" ./cmd/vlab
vlab() { "$work/vlab" "$@"; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ns() { cat /proc/"$1"/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'; }

defined=0
for n in 0 50 200; do
	while [ "$defined" -lt "$n" ]; do
		name=$(printf 'vm-%03d' "$defined")
		vlab create "$name" --kernel "$KERNEL" --initrd "$INITRD" --append "console=ttyS0 quiet" --display none --memory 64M >/dev/null
		if [ "$defined" -lt 5 ]; then vlab start --paused "$name" >/dev/null; fi
		defined=$((defined + 1))
	done
	tmux new-session -d -s "$session" -x 120 -y 40 "exec env XDG_DATA_HOME=$XDG_DATA_HOME XDG_CONFIG_HOME=$XDG_CONFIG_HOME XDG_STATE_HOME=$XDG_STATE_HOME XDG_CACHE_HOME=$XDG_CACHE_HOME XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR $work/vlab"
	sleep "$SETTLE_SECS"
	pid=$(tmux display-message -p -t "$session" '#{pane_pid}')
	k0=$(ticks "$pid"); c0=$(ns "$pid"); t0=$(date +%s.%N)
	sleep "$IDLE_SECS"
	k1=$(ticks "$pid"); c1=$(ns "$pid"); t1=$(date +%s.%N)
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
	running=$((n < 5 ? n : 5))
	lat=-
	if [ "$n" -gt 0 ]; then
		lats=()
		for i in 1 2 3 4 5; do
			vlab resume vm-000 >/dev/null
			until tmux capture-pane -p -t "$session" | grep -q '^vm-000 .*running'; do sleep 0.01; done
			s=$(date +%s%N)
			vlab pause vm-000 >/dev/null &
			until tmux capture-pane -p -t "$session" | grep -q '^vm-000 .*paused'; do :; done
			e=$(date +%s%N)
			wait
			lats+=($(( (e - s) / 1000000 )))
		done
		lat=$(printf '%s\n' "${lats[@]}" | sort -n | sed -n 3p)
	fi
	awk -v n="$n" -v r="$running" -v k0="$k0" -v k1="$k1" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v rss="$rss" -v lat="$lat" 'BEGIN {
		d = t1 - t0
		printf "vms=%d running=%d secs=%.0f cpu_schedstat=%.3f%% cpu_stat_ticks=%.3f%% rss=%.1fMB pause_to_screen_ms=%s\n", n, r, d, (c1 - c0) / 1e9 / d * 100, (k1 - k0) / 100 / d * 100, rss / 1024, lat }'
	tmux send-keys -t "$session" q
	sleep 1
	tmux kill-session -t "$session" 2>/dev/null || true
done
