package tui

import (
	"fmt"
	"strconv"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"vlab/emulator"
	"vlab/machine"
)

// Boot order choices of the edit screen (Settings.BootOrder values).
var bootChoices = []string{"disk", "cdrom", "network"}

// editView edits an existing machine's settings. While the machine runs,
// only the ISO can change (a live media change); the other fields show why
// they are locked.
type editView struct {
	m      *Model
	vm     VM
	form   *form
	saving bool
	err    error
}

const (
	edMemory = iota
	edCPUs
	edISO
	edBoot
	edNet
	edForwards
	edDisplay
	edAccel
)

func newEditView(m *Model, vm VM) *editView {
	v := &editView{m: m, vm: vm}
	v.build()
	return v
}

func (v *editView) build() {
	s := SettingsOf(v.vm)
	h := v.m.host
	boot := s.BootOrder
	if boot == "" {
		boot = "disk"
	}
	nets := []string{string(emulator.NetUser), string(emulator.NetSandbox), string(emulator.NetNone)}
	if s.Net != emulator.NetUser && s.Net != emulator.NetSandbox && s.Net != emulator.NetNone {
		nets = append(nets, string(s.Net))
	}
	f := newForm(
		textField("Memory (MiB)", strconv.Itoa(s.MemoryMiB), "", intIn("memory", 16, h.MemoryMiB, fmt.Sprintf("the host has %s", fmtBytes(int64(h.MemoryMiB)<<20)))),
		textField("CPUs", strconv.Itoa(s.CPUs), "", intIn("CPUs", 1, h.CPUs, fmt.Sprintf("the host has %d", h.CPUs))),
		textField("ISO", s.ISO, "empty = no disc (eject)", nil),
		choiceField("Boot first", bootChoices, boot),
		choiceField("Network", nets, string(s.Net)),
		textField("Forwards", formatForwards(s.Forwards), "e.g. 2222:22, 8080:80 (host:guest)", func(s string) error { _, err := parseForwards(s); return err }),
		choiceField("Display", []string{string(emulator.DisplayVNC), string(emulator.DisplayNone)}, string(orDefault(string(s.Display), string(emulator.DisplayVNC)))),
		choiceField("Accel", []string{"auto", "kvm", "tcg"}, s.Accel.String()),
	)
	f.fields[edISO].hint = "a running machine changes the disc at once"
	if v.vm.State.Active() {
		why := map[int]string{
			edMemory:   "fixed while QEMU runs: stop the machine to change it",
			edCPUs:     "fixed while QEMU runs: stop the machine to change it",
			edBoot:     "stop the machine to change the boot order",
			edNet:      "NICs are fixed while QEMU runs: stop the machine first",
			edForwards: "change them live with f on the list",
			edDisplay:  "the display is fixed while QEMU runs: stop the machine first",
			edAccel:    "the accelerator is chosen at start: stop the machine first",
		}
		for i, r := range why {
			f.fields[i].locked = r
		}
		f.setFocus(edISO)
	}
	if v.form != nil {
		f.width = v.form.width
	}
	v.form = f
	v.syncNet()
}

func (v *editView) syncNet() {
	net := v.form.fields[edNet].Value()
	v.form.fields[edForwards].hidden = net != string(emulator.NetUser) && net != string(emulator.NetSandbox)
}

// Title implements the title bar.
func (v *editView) Title() string { return "edit " + v.vm.Name }

func (v *editView) Init() tea.Cmd { return hostCmd(v.m.ctx, v.m.svc) }

func (v *editView) SetSize(w, h int) { v.form.width = w }

func (v *editView) typing() bool { return v.form.typing() }

func (v *editView) Help() help.KeyMap {
	k := &v.m.keys
	return bindings{short: []key.Binding{k.Submit, k.Back, k.NextField, k.PrevField, k.Cycle}}
}

// vmChanged follows the machine's state while the screen is open, so the
// locks match what it is now.
func (v *editView) vmChanged(vms []VM) {
	for _, vm := range vms {
		if vm.Name == v.vm.Name && vm.State.Active() != v.vm.State.Active() {
			v.vm.State = vm.State
			v.build()
		}
	}
}

func (v *editView) settings() (Settings, error) {
	f := v.form.fields
	var s Settings
	var err error
	if s.MemoryMiB, err = strconv.Atoi(f[edMemory].Value()); err != nil {
		return s, fmt.Errorf("memory: %w", err)
	}
	if s.CPUs, err = strconv.Atoi(f[edCPUs].Value()); err != nil {
		return s, fmt.Errorf("CPUs: %w", err)
	}
	if s.ISO, err = machine.AbsPath(f[edISO].Value()); err != nil { // as the CLI does
		return s, err
	}
	s.BootOrder = f[edBoot].Value()
	s.Net = emulator.NetMode(f[edNet].Value())
	if s.Net == emulator.NetUser || s.Net == emulator.NetSandbox {
		if s.Forwards, err = parseForwards(f[edForwards].Value()); err != nil {
			return s, err
		}
	}
	s.Display = emulator.Display(f[edDisplay].Value())
	if s.Accel, err = emulator.ParseAccel(f[edAccel].Value()); err != nil {
		return s, err
	}
	return s, nil
}

func (v *editView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case hostMsg:
		if msg.err == nil {
			h := msg.limits
			v.form.fields[edMemory].validate = intIn("memory", 16, h.MemoryMiB, fmt.Sprintf("the host has %s", fmtBytes(int64(h.MemoryMiB)<<20)))
			v.form.fields[edCPUs].validate = intIn("CPUs", 1, h.CPUs, fmt.Sprintf("the host has %d", h.CPUs))
			for _, f := range v.form.fields {
				f.check()
			}
		}
		return nil
	case tea.KeyPressMsg:
		if v.saving {
			return nil
		}
		k := &v.m.keys
		switch {
		case key.Matches(msg, k.Back):
			return func() tea.Msg { return closeViewMsg{} }
		case key.Matches(msg, k.Submit):
			return v.save()
		}
	}
	cmd := v.form.Update(msg, &v.m.keys)
	v.syncNet()
	v.err = nil
	return cmd
}

func (v *editView) save() tea.Cmd {
	if !v.form.valid() {
		return nil
	}
	s, err := v.settings()
	if err != nil {
		v.err = err
		return nil
	}
	if settingsEqual(s, SettingsOf(v.vm)) {
		return func() tea.Msg { return closeViewMsg{} }
	}
	v.saving = true
	m := v.m
	ctx, svc, name := m.ctx, m.svc, v.vm.Name
	return startJobCmd(jobSpec{
		title: "saving settings of " + name, op: "edit", name: name, ok: "saved the settings of " + name,
		run: func(ProgressFunc) error { return svc.Update(ctx, name, s) },
		then: func(m *Model) tea.Cmd {
			if m.view == view(v) {
				m.view = nil
				m.layout()
			}
			return nil
		},
		fail: func(*Model) tea.Cmd { v.saving = false; return nil },
	})
}

func (v *editView) View() string {
	st := &v.m.styles
	head := st.Bold.Render("Settings of "+v.vm.Name) + "  " + st.State(v.vm.State).Render(stateIcon(v.vm.State)+" "+string(v.vm.State))
	if v.vm.State.Active() {
		head += "\n" + st.Muted.Render("The machine is running: only the ISO can change now. Stop it (x) to change the rest.")
	}
	s := head + "\n\n" + v.form.View(st)
	if v.err != nil {
		s += "\n\n" + st.FieldErr.Render("✗ "+v.err.Error())
	}
	if v.saving {
		s += "\n\n" + st.StatusMsg.Render("saving…")
	}
	return s
}

func settingsEqual(a, b Settings) bool {
	fa, fb := formatForwards(a.Forwards), formatForwards(b.Forwards)
	a.Forwards, b.Forwards = nil, nil
	if a.BootOrder == "" {
		a.BootOrder = "disk"
	}
	if b.BootOrder == "" {
		b.BootOrder = "disk"
	}
	return fa == fb && a.MemoryMiB == b.MemoryMiB && a.CPUs == b.CPUs && a.ISO == b.ISO && a.BootOrder == b.BootOrder &&
		a.Net == b.Net && a.Display == b.Display && a.Accel == b.Accel
}
