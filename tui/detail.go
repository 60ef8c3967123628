package tui

import (
	"fmt"
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

const detailLabelWidth = 10

// renderDetail renders the detail pane of vm into exactly w×h cells
// (border included). When the pane is too short for everything, the least
// important sections are left out (QMP first, then the display, the OS
// line...) rather than cutting the bottom off.
func renderDetail(vm *VM, w, h int, st *Styles) string {
	innerW := max(1, w-4) // border + padding
	innerH := max(1, h-2)
	var lines []string
	if vm == nil {
		lines = []string{st.Muted.Render("No machine selected.")}
	} else {
		lines = detailLines(vm, innerW, innerH, st)
	}
	if len(lines) > innerH {
		lines = append(lines[:innerH-1], st.Muted.Render("…"))
	}
	for len(lines) < innerH {
		lines = append(lines, "")
	}
	return drawPane(lines, w, innerW, st)
}

// drawPane frames lines (each fitted to innerW) in a rounded border w
// cells wide. It is drawn by hand: lipgloss's general border and wrap
// machinery was half the cost of a frame.
func drawPane(lines []string, w, innerW int, st *Styles) string {
	b := lipgloss.RoundedBorder()
	bar := strings.Repeat(b.Top, max(0, w-2))
	left := st.PaneEdge.Render(b.Left) + " "
	right := " " + st.PaneEdge.Render(b.Right)
	var sb strings.Builder
	sb.Grow((w + 32) * (len(lines) + 2))
	sb.WriteString(st.PaneEdge.Render(b.TopLeft + bar + b.TopRight))
	for _, ln := range lines {
		sb.WriteByte('\n')
		sb.WriteString(left)
		sb.WriteString(fit(ln, innerW))
		sb.WriteString(right)
	}
	sb.WriteByte('\n')
	sb.WriteString(st.PaneEdge.Render(b.BottomLeft + strings.Repeat(b.Bottom, max(0, w-2)) + b.BottomRight))
	return sb.String()
}

// section is one labelled part of the detail pane.
type section struct {
	prio  int // lower is more important
	lines []string
}

func detailLines(vm *VM, w, h int, st *Styles) []string {
	valW := max(1, w-detailLabelWidth)
	var secs []section
	add := func(prio int, label, value string) {
		if value == "" {
			return
		}
		var l []string
		kvLabel(&l, st, label, value, valW)
		secs = append(secs, section{prio, l})
	}
	title := st.PaneTitle.Render(vm.Name) + "  " + st.State(vm.State).Render(stateIcon(vm.State)+" "+string(vm.State))
	secs = append(secs, section{0, []string{title}})
	if vm.LastError != "" {
		var l []string
		for i, part := range strings.Split(ansi.Wrap(vm.LastError, valW, " ,/"), "\n") {
			lb := strings.Repeat(" ", detailLabelWidth)
			if i == 0 {
				lb = st.StatusErr.Render(fit("Error", detailLabelWidth))
			}
			l = append(l, lb+st.FieldErr.Render(part))
		}
		secs = append(secs, section{0, l})
	}
	os := vm.OS
	if os == "" {
		os = vm.Profile
	}
	if os == "" {
		add(6, "OS", vm.Arch.String())
	} else {
		add(6, "OS", os+" ("+vm.Arch.String()+")")
	}
	accel := strings.ToUpper(vm.Accel.String())
	if vm.AccelReason != "" {
		accel += " — " + strings.TrimPrefix(strings.TrimPrefix(vm.AccelReason, "TCG: "), "KVM: ")
	}
	add(5, "Accel", accel)
	hw := fmt.Sprintf("%d vCPU · %s RAM", vm.CPUs, fmtBytes(int64(vm.MemoryMiB)<<20))
	if vm.State == StateRunning || vm.State == StatePaused {
		hw += fmt.Sprintf(" · %.1f%% CPU · up %s", vm.CPUPercent, fmtDuration(vm.Uptime))
	}
	add(1, "Hardware", hw)
	add(1, "Boot", bootSource(vm))
	add(3, "Disks", orDefault(diskLines(vm), "none"))
	nics, ips := networkLines(vm)
	add(2, "Network", orDefault(nics, "none"))
	add(5, "Guest IP", ips)
	var shares []string
	for _, sh := range vm.Shares {
		shares = append(shares, sh.Tag+" "+sh.HostDir+roText(sh.ReadOnly))
	}
	add(4, "Shares", strings.Join(shares, "\n"))
	add(4, "Snapshots", fmt.Sprint(vm.Snapshots))
	add(2, "VNC", vm.VNC)
	add(2, "Serial", vm.Serial)
	add(7, "Display", string(vm.Display))
	add(8, "QMP", vm.QMP)

	return fitSections(secs, h)
}

// fitSections leaves out the least important sections until the rest fit
// in h lines.
func fitSections(secs []section, h int) []string {
	total := 0
	for _, s := range secs {
		total += len(s.lines)
	}
	for prio := 8; prio > 0 && total > h; prio-- {
		for i := range secs {
			if secs[i].prio == prio && secs[i].lines != nil {
				total -= len(secs[i].lines)
				secs[i].lines = nil
			}
		}
	}
	var out []string
	for _, s := range secs {
		out = append(out, s.lines...)
	}
	return out
}

// diskLines describes the VM's disks, two lines each: id, bus, size and
// use, then the path.
func diskLines(vm *VM) string {
	var disks []string
	for i, d := range vm.Disks {
		line := fmt.Sprintf("%s %s %s", diskID(d, i), orDefault(d.Bus, "default"), fmtBytes(d.VirtualBytes))
		if d.ActualBytes > 0 {
			line += fmt.Sprintf(" (%s used)", fmtBytes(d.ActualBytes))
		}
		if d.ReadOnly {
			line += " ro"
		}
		disks = append(disks, line+"\n"+d.Path)
	}
	return strings.Join(disks, "\n")
}

// networkLines describes the VM's NICs, and the guest addresses known
// (without the NIC's id when there is only one).
func networkLines(vm *VM) (nics, ips string) {
	var nl, il []string
	for _, n := range vm.NICs {
		nl = append(nl, nicLine(n))
		if n.GuestIP != "" {
			il = append(il, n.ID+" "+n.GuestIP)
		}
	}
	if len(vm.NICs) == 1 && len(il) == 1 {
		il[0] = vm.NICs[0].GuestIP
	}
	return strings.Join(nl, "\n"), strings.Join(il, "\n")
}

// kvLabel appends a label/value row where label may be blank (a
// continuation row of a list such as disks).
func kvLabel(out *[]string, st *Styles, label, value string, valW int) {
	var parts []string
	for _, v := range strings.Split(value, "\n") {
		parts = append(parts, strings.Split(ansi.Wrap(v, valW, " ,/"), "\n")...)
	}
	for i, part := range parts {
		l := strings.Repeat(" ", detailLabelWidth)
		if i == 0 && label != "" {
			l = st.Label.Render(fit(label, detailLabelWidth))
		}
		*out = append(*out, l+part)
	}
}

func diskID(d DiskInfo, i int) string {
	if d.NodeName != "" {
		return d.NodeName
	}
	return fmt.Sprintf("disk%d", i)
}

func bootSource(vm *VM) string {
	var parts []string
	if vm.Kernel != "" {
		k := "kernel " + vm.Kernel
		if vm.Initrd != "" {
			k += "\ninitrd " + vm.Initrd
		}
		if vm.Append != "" {
			k += "\nappend " + vm.Append
		}
		parts = append(parts, k)
	}
	if vm.ISO != "" {
		parts = append(parts, "ISO "+vm.ISO)
	}
	if len(parts) == 0 {
		parts = append(parts, "disk")
	}
	s := strings.Join(parts, "\n")
	if vm.BootOrder != "" {
		s += " (order " + vm.BootOrder + ")"
	}
	return s
}

// nicLine describes a NIC: id, mode, model and MAC, then one line per
// forward.
func nicLine(n NIC) string {
	s := fmt.Sprintf("%s %s", orDefault(n.ID, "net"), orDefault(n.Mode, string(n.Kind)))
	if n.Model != "" {
		s += " " + n.Model
	}
	if n.MAC != "" {
		s += " " + n.MAC
	}
	for _, f := range n.Forwards {
		s += "\n" + fmtForward(f)
	}
	return s
}

// fmtForward writes a forward with the host port it is bound to, "auto"
// for an auto port not bound now, and its note.
func fmtForward(f PortForward) string {
	port := "auto"
	switch {
	case f.BoundPort != 0:
		port = fmt.Sprint(f.BoundPort)
	case f.Rule.HostPort != 0:
		port = fmt.Sprint(f.Rule.HostPort)
	}
	s := fmt.Sprintf("%s %s:%s→%d", orDefault(f.Rule.Proto, "tcp"), orDefault(f.Rule.HostAddr, "127.0.0.1"), port, f.Rule.GuestPort)
	if f.Auto() && f.BoundPort != 0 {
		s += " (auto)"
	}
	if f.Note != "" {
		s += " (" + f.Note + ")"
	}
	return s
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
