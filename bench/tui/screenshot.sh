#!/usr/bin/env bash
# Takes docs/tui.png: a real xterm (under Xvfb) attached to a tmux session
# that runs the TUI, captured with xwd. By default the TUI runs on the demo
# library (bench/tui -serve -demo); SHOT_CMD overrides it, e.g.
#   SHOT_CMD="bin/vlab" bash bench/tui/screenshot.sh
# Needs: Xvfb, xterm, xwd (x11-apps), netpbm, tmux, fonts-dejavu.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-docs/tui.png}
cols=${COLS:-120}
rows=${ROWS:-34}
keys=${SHOT_KEYS:-}
for c in Xvfb xterm xwd xwdtopnm pnmtopng tmux; do
	command -v "$c" >/dev/null || { echo "screenshot.sh: $c is missing (apt-get install xvfb xterm x11-apps netpbm tmux)" >&2; exit 1; }
done

work=$(mktemp -d)
display=":$((90 + RANDOM % 9))"
session="vlab-shot-$$"
xvfb_pid=""
xterm_pid=""
cleanup() {
	tmux kill-session -t "$session" 2>/dev/null || true
	[[ -n $xterm_pid ]] && kill "$xterm_pid" 2>/dev/null || true
	[[ -n $xvfb_pid ]] && kill "$xvfb_pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

cmd=${SHOT_CMD:-}
if [[ -z $cmd ]]; then
	go build -o "$work/tuibench" ./bench/tui
	cmd="$work/tuibench -serve -demo -stats 1h"
fi

Xvfb "$display" -screen 0 1920x1200x24 -nolisten tcp >/dev/null 2>&1 &
xvfb_pid=$!
sleep 1
tmux new-session -d -s "$session" -x "$cols" -y "$rows" "exec env TERM=tmux-256color COLORTERM=truecolor $cmd"
tmux set-option -t "$session" status off >/dev/null
xterm -display "$display" -T vlabshot -geometry "${cols}x${rows}+0+0" -fa 'DejaVu Sans Mono' -fs 11 \
	-bg '#1a1b26' -fg '#c0caf5' -b 8 -xrm 'XTerm*termName: xterm-256color' -xrm 'XTerm*directColor: true' \
	-e tmux attach -t "$session" &
xterm_pid=$!
sleep 2
for k in $keys; do
	tmux send-keys -t "$session" "$k"
	sleep 0.3
done
sleep 1
mkdir -p "$(dirname "$out")"
xwd -display "$display" -name vlabshot -silent | xwdtopnm 2>/dev/null | pnmtopng > "$out"
echo "wrote $out"
