package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"vlab/emulator"
)

const detailLabelWidth = 10

// renderDetail renders the detail pane of vm into exactly w×h cells
// (border included).
func renderDetail(vm *VM, w, h int, st *Styles) string {
	innerW := max(1, w-4) // border + padding
	innerH := max(1, h-2)
	var lines []string
	if vm == nil {
		lines = []string{st.Muted.Render("No machine selected.")}
	} else {
		lines = detailLines(vm, innerW, st)
	}
	if len(lines) > innerH {
		lines = append(lines[:innerH-1], st.Muted.Render("…"))
	}
	for len(lines) < innerH {
		lines = append(lines, "")
	}
	for i, ln := range lines {
		lines[i] = fit(ln, innerW)
	}
	return st.Pane.Width(w).Height(h).Render(strings.Join(lines, "\n"))
}

func detailLines(vm *VM, w int, st *Styles) []string {
	var out []string
	title := st.PaneTitle.Render(vm.Name) + "  " + st.State(vm.State).Render(stateIcon(vm.State)+" "+string(vm.State))
	out = append(out, title)
	valW := max(1, w-detailLabelWidth)
	kv := func(label, value string) {
		if value == "" {
			return
		}
		wrapped := strings.Split(ansi.Wrap(value, valW, " ,/"), "\n")
		for i, part := range wrapped {
			l := strings.Repeat(" ", detailLabelWidth)
			if i == 0 {
				l = st.Label.Render(fit(label, detailLabelWidth))
			}
			out = append(out, l+part)
		}
	}
	os := vm.OS
	if os == "" {
		os = vm.Profile
	}
	kv("OS", strings.TrimSpace(os+" ("+vm.Arch.String()+")"))
	accel := strings.ToUpper(vm.Accel.String())
	if vm.AccelReason != "" {
		accel += " — " + strings.TrimPrefix(strings.TrimPrefix(vm.AccelReason, "TCG: "), "KVM: ")
	}
	kv("Accel", accel)
	hw := fmt.Sprintf("%d vCPU · %s RAM", vm.CPUs, fmtBytes(int64(vm.MemoryMiB)<<20))
	if vm.State == StateRunning || vm.State == StatePaused {
		hw += fmt.Sprintf(" · %.1f%% CPU · up %s", vm.CPUPercent, fmtDuration(vm.Uptime))
	}
	kv("Hardware", hw)
	kv("Boot", bootSource(vm))
	if len(vm.Disks) == 0 {
		kv("Disks", "none")
	}
	for i, d := range vm.Disks {
		label := ""
		if i == 0 {
			label = "Disks"
		}
		line := fmt.Sprintf("%s %s %s", diskID(d, i), orDefault(d.Bus, "default"), fmtBytes(d.VirtualBytes))
		if d.ActualBytes > 0 {
			line += fmt.Sprintf(" (%s used)", fmtBytes(d.ActualBytes))
		}
		if d.ReadOnly {
			line += " ro"
		}
		line += " " + d.Path
		kvLabel(&out, st, label, line, valW)
	}
	if len(vm.NICs) == 0 {
		kv("Network", "none")
	}
	for i, n := range vm.NICs {
		label := ""
		if i == 0 {
			label = "Network"
		}
		kvLabel(&out, st, label, nicLine(n), valW)
	}
	kv("Display", string(vm.Display))
	kv("Snapshots", fmt.Sprint(vm.Snapshots))
	kv("VNC", vm.VNC)
	kv("Serial", vm.Serial)
	kv("QMP", vm.QMP)
	if vm.LastError != "" {
		for i, part := range strings.Split(ansi.Wrap(vm.LastError, valW, " ,/"), "\n") {
			l := strings.Repeat(" ", detailLabelWidth)
			if i == 0 {
				l = st.StatusErr.Render(fit("Error", detailLabelWidth))
			}
			out = append(out, l+st.FieldErr.Render(part))
		}
	}
	return out
}

// kvLabel appends a label/value row where label may be blank (a
// continuation row of a list such as disks).
func kvLabel(out *[]string, st *Styles, label, value string, valW int) {
	for i, part := range strings.Split(ansi.Wrap(value, valW, " ,/"), "\n") {
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
			k += " + initrd " + vm.Initrd
		}
		if vm.Append != "" {
			k += ` append "` + vm.Append + `"`
		}
		parts = append(parts, k)
	}
	if vm.ISO != "" {
		parts = append(parts, "ISO "+vm.ISO)
	}
	if len(parts) == 0 {
		parts = append(parts, "disk")
	}
	s := strings.Join(parts, "; ")
	if vm.BootOrder != "" {
		s += " (order " + vm.BootOrder + ")"
	}
	return s
}

func nicLine(n emulator.NIC) string {
	s := fmt.Sprintf("%s %s", orDefault(n.ID, "net"), n.Mode)
	if n.Model != "" {
		s += " " + n.Model
	}
	if n.MAC != "" {
		s += " " + n.MAC
	}
	if n.Restrict {
		s += " restricted"
	}
	for _, f := range n.Forwards {
		s += " " + fmtForward(f)
	}
	return s
}

func fmtForward(f emulator.Forward) string {
	host := f.HostAddr
	if host == "" {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("%s %s:%d→%d", orDefault(f.Proto, "tcp"), host, f.HostPort, f.GuestPort)
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
