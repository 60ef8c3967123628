package tui

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// vmList is the machine list of the main screen. It is a small custom
// widget rather than bubbles/table because a mouse click must map to a row,
// which needs the scroll offset table keeps private, and because 200
// machines must render well inside a frame budget: only the visible rows are
// rendered, and only the state cell is styled.
type vmList struct {
	all    []VM
	vis    []int // indices into all that pass the filter
	filter string
	cursor int // index into vis
	offset int // first visible row
	width  int
	height int // rows, including the header
}

// SetVMs replaces the machines, keeping the selection on the same name.
func (l *vmList) SetVMs(vms []VM) {
	sel := ""
	if vm, ok := l.Selected(); ok {
		sel = vm.Name
	}
	l.all = vms
	l.refilter(sel)
}

// SetFilter filters by a case-insensitive substring of name, profile, OS,
// arch or state.
func (l *vmList) SetFilter(f string) {
	sel := ""
	if vm, ok := l.Selected(); ok {
		sel = vm.Name
	}
	l.filter = f
	l.refilter(sel)
}

func (l *vmList) refilter(sel string) {
	l.vis = l.vis[:0]
	f := strings.ToLower(strings.TrimSpace(l.filter))
	for i := range l.all {
		if f == "" || matchVM(&l.all[i], f) {
			l.vis = append(l.vis, i)
		}
	}
	l.cursor = 0
	for i, idx := range l.vis {
		if l.all[idx].Name == sel {
			l.cursor = i
			break
		}
	}
	l.clamp()
}

func matchVM(vm *VM, f string) bool {
	for _, s := range []string{vm.Name, vm.Profile, vm.OS, vm.Arch.String(), string(vm.State)} {
		if strings.Contains(strings.ToLower(s), f) {
			return true
		}
	}
	return false
}

// Select moves the cursor to the named machine, if shown.
func (l *vmList) Select(name string) {
	for i, idx := range l.vis {
		if l.all[idx].Name == name {
			l.cursor = i
			l.clamp()
			return
		}
	}
}

// Selected returns the machine under the cursor.
func (l *vmList) Selected() (VM, bool) {
	if l.cursor < 0 || l.cursor >= len(l.vis) {
		return VM{}, false
	}
	return l.all[l.vis[l.cursor]], true
}

// Len is the number of machines shown.
func (l *vmList) Len() int { return len(l.vis) }

// Move moves the cursor by n rows.
func (l *vmList) Move(n int) {
	l.cursor += n
	l.clamp()
}

// Top and Bottom jump to the ends.
func (l *vmList) Top()    { l.cursor = 0; l.clamp() }
func (l *vmList) Bottom() { l.cursor = len(l.vis) - 1; l.clamp() }

// rows is how many machine rows fit under the header.
func (l *vmList) rows() int { return max(1, l.height-1) }

// ClickRow selects the machine on the given row (0 = first row under the
// header) and reports whether there was one.
func (l *vmList) ClickRow(row int) bool {
	i := l.offset + row
	if row < 0 || row >= l.rows() || i >= len(l.vis) {
		return false
	}
	l.cursor = i
	l.clamp()
	return true
}

// SetSize sets the list's width and height (header included).
func (l *vmList) SetSize(w, h int) {
	l.width, l.height = w, h
	l.clamp()
}

func (l *vmList) clamp() {
	if l.cursor >= len(l.vis) {
		l.cursor = len(l.vis) - 1
	}
	if l.cursor < 0 {
		l.cursor = 0
	}
	n := l.rows()
	if l.cursor < l.offset {
		l.offset = l.cursor
	}
	if l.cursor >= l.offset+n {
		l.offset = l.cursor - n + 1
	}
	if maxOff := max(0, len(l.vis)-n); l.offset > maxOff {
		l.offset = maxOff
	}
	if l.offset < 0 {
		l.offset = 0
	}
}

// column is one list column; the name column takes what is left.
type column struct {
	title string
	width int
	right bool
	cell  func(vm *VM) string
}

var (
	colState   = column{"STATE", 10, false, func(vm *VM) string { return stateIcon(vm.State) + " " + string(vm.State) }}
	colArch    = column{"ARCH", 7, false, func(vm *VM) string { return vm.Arch.String() }}
	colMem     = column{"MEM", 5, true, func(vm *VM) string { return fmtMiB(vm.MemoryMiB) }}
	colAccel   = column{"ACC", 3, false, func(vm *VM) string { return vm.Accel.String() }}
	colCPU     = column{"CPU%", 5, true, cpuCell}
	colUptime  = column{"UPTIME", 6, true, func(vm *VM) string { return uptimeCell(vm) }}
	colProfile = column{"PROFILE", 12, false, func(vm *VM) string { return profileName(vm) }}
	// colOrder is the order columns are added in as width allows.
	colOrder = []column{colState, colArch, colCPU, colMem, colAccel, colUptime, colProfile}
	// colShow is the on-screen order.
	colShow = []string{"PROFILE", "ARCH", "STATE", "ACC", "CPU%", "MEM", "UPTIME"}
)

const minNameWidth = 10

// layoutColumns picks the columns that fit in width and the name width.
func layoutColumns(width int) ([]column, int) {
	used := 0
	picked := map[string]column{}
	for _, c := range colOrder {
		if width-(used+c.width+1) < minNameWidth {
			break
		}
		used += c.width + 1
		picked[c.title] = c
	}
	cols := make([]column, 0, len(picked))
	for _, t := range colShow {
		if c, ok := picked[t]; ok {
			cols = append(cols, c)
		}
	}
	return cols, width - used
}

// View renders the header and the visible rows, exactly height lines.
func (l *vmList) View(st *Styles) string {
	cols, nameW := layoutColumns(l.width)
	var b strings.Builder
	b.Grow((l.width + 16) * l.height)
	hdr := fit("NAME", nameW)
	for _, c := range cols {
		hdr += " " + align(c.title, c.width, c.right)
	}
	b.WriteString(st.Header.Render(fit(hdr, l.width)))
	n := l.rows()
	stateCells := make(map[State]string, 4)
	for r := 0; r < n; r++ {
		b.WriteByte('\n')
		i := l.offset + r
		if i >= len(l.vis) {
			b.WriteString(strings.Repeat(" ", l.width))
			continue
		}
		vm := &l.all[l.vis[i]]
		if i == l.cursor {
			line := fit(vm.Name, nameW)
			for _, c := range cols {
				line += " " + align(c.cell(vm), c.width, c.right)
			}
			b.WriteString(st.Selected.Render(fit(line, l.width)))
			continue
		}
		b.WriteString(fit(vm.Name, nameW))
		for _, c := range cols {
			b.WriteByte(' ')
			if c.title == "STATE" { // styled; the same few cells every row
				cell, ok := stateCells[vm.State]
				if !ok {
					cell = st.State(vm.State).Render(align(c.cell(vm), c.width, c.right))
					stateCells[vm.State] = cell
				}
				b.WriteString(cell)
				continue
			}
			b.WriteString(align(c.cell(vm), c.width, c.right))
		}
	}
	return b.String()
}

// fit pads or truncates s to exactly w cells.
func fit(s string, w int) string {
	return align(s, w, false)
}

func align(s string, w int, right bool) string {
	if w <= 0 {
		return ""
	}
	sw := cellWidth(s)
	if sw > w {
		return ansi.Truncate(s, w, "…")
	}
	pad := strings.Repeat(" ", w-sw)
	if right {
		return pad + s
	}
	return s + pad
}

// cellWidth is ansi.StringWidth with a fast path for plain ASCII, which
// most cells are (grapheme segmentation dominates a frame otherwise).
func cellWidth(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || c < 0x20 {
			return ansi.StringWidth(s)
		}
	}
	return len(s)
}

func cpuCell(vm *VM) string {
	if vm.State != StateRunning && vm.State != StatePaused {
		return "-"
	}
	return fmt.Sprintf("%.1f", vm.CPUPercent)
}

func uptimeCell(vm *VM) string {
	if !vm.State.Active() {
		return "-"
	}
	return fmtDuration(vm.Uptime)
}

func profileName(vm *VM) string {
	if vm.OS != "" {
		return vm.OS
	}
	if vm.Profile != "" {
		return vm.Profile
	}
	return "-"
}

// fmtMiB formats a memory size compactly: 512M, 2G, 1.5G.
func fmtMiB(mib int) string {
	switch {
	case mib <= 0:
		return "-"
	case mib < 1024:
		return fmt.Sprintf("%dM", mib)
	case mib%1024 == 0:
		return fmt.Sprintf("%dG", mib/1024)
	default:
		return fmt.Sprintf("%.1fG", float64(mib)/1024)
	}
}

// fmtBytes formats a byte count with binary units.
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[exp]
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), suffix)
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}

// fmtDuration formats an uptime compactly: 45s, 12m05s, 1h02m, 3d04h.
func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}
