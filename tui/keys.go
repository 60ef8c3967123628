package tui

import "charm.land/bubbles/v2/key"

// KeyMap holds every key binding of the TUI. Destructive actions (force
// stop, reset, delete, snapshot restore/delete) are shifted keys and always
// ask for confirmation; a few harmless ones are shifted too where the
// lower-case key was taken (I import, S ssh, C copy, F shared folders).
type KeyMap struct {
	// Movement.
	Up, Down, PageUp, PageDown, Top, Bottom key.Binding

	// Machine actions on the list.
	New, Start, Stop, ForceStop, Pause, Reset key.Binding
	Console, Serial, Monitor, Log, Snapshots  key.Binding
	Edit, Clone, LinkedClone, Delete, Cmdline key.Binding
	Forwards, Export, Import                  key.Binding
	SSH, Copy, Shares                         key.Binding

	// List and app.
	Filter, ClearFilter, Help, Quit key.Binding

	// Dialogs, forms and views.
	Yes, No, Back, Next, NextField, PrevField, Submit key.Binding
	Cycle, OpenPicker, Reload, Detach                 key.Binding
	TakeSnap, RestoreSnap, DeleteSnap                 key.Binding
	AddForward, RemoveForward                         key.Binding
	AddShare, RemoveShare, OpenGallery                key.Binding

	// The monitor view: run the typed line, walk its history, complete a
	// command name, show/hide and re-read the trace log, and the keys that
	// run one command line each (listed in the view's footer).
	RunLine, HistoryPrev, HistoryNext, Complete key.Binding
	ToggleTrace, ReloadTrace                    key.Binding
	MonitorShortcuts                            []MonitorShortcut
}

// MonitorShortcut is a key of the monitor view that runs one command line.
type MonitorShortcut struct {
	Key  key.Binding
	Line string
}

// DefaultKeyMap returns vlab's key bindings.
func DefaultKeyMap() KeyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	return KeyMap{
		Up:       b([]string{"up", "k"}, "↑/k", "up"),
		Down:     b([]string{"down", "j"}, "↓/j", "down"),
		PageUp:   b([]string{"pgup"}, "pgup", "page up"),
		PageDown: b([]string{"pgdown"}, "pgdn", "page down"),
		Top:      b([]string{"home", "g"}, "g/home", "first"),
		Bottom:   b([]string{"end", "G"}, "G/end", "last"),

		New:         b([]string{"n"}, "n", "new"),
		Start:       b([]string{"s"}, "s", "start"),
		Stop:        b([]string{"x"}, "x", "stop"),
		ForceStop:   b([]string{"K"}, "K", "force stop"),
		Pause:       b([]string{"p"}, "p", "pause/resume"),
		Reset:       b([]string{"R"}, "R", "reset"),
		Console:     b([]string{"v"}, "v", "VNC console"),
		Serial:      b([]string{"c"}, "c", "serial"),
		Monitor:     b([]string{"m"}, "m", "QEMU monitor"),
		Log:         b([]string{"l"}, "l", "qemu.log"),
		Snapshots:   b([]string{"t"}, "t", "snapshots"),
		Edit:        b([]string{"e"}, "e", "edit"),
		Clone:       b([]string{"y"}, "y", "clone"),
		LinkedClone: b([]string{"Y"}, "Y", "linked clone"),
		Delete:      b([]string{"D"}, "D", "delete"),
		Cmdline:     b([]string{"i"}, "i", "qemu cmdline"),
		Forwards:    b([]string{"f"}, "f", "port forwards"),
		Export:      b([]string{"o"}, "o", "export"),
		Import:      b([]string{"I"}, "I", "import OVA/OVF"),
		SSH:         b([]string{"S"}, "S", "ssh"),
		Copy:        b([]string{"C"}, "C", "copy files"),
		Shares:      b([]string{"F"}, "F", "shared folders"),

		Filter:      b([]string{"/"}, "/", "filter"),
		ClearFilter: b([]string{"esc"}, "esc", "clear filter"),
		Help:        b([]string{"?"}, "?", "more keys"),
		Quit:        b([]string{"q", "ctrl+c"}, "q", "quit"),

		Yes:        b([]string{"y", "Y"}, "y", "yes"),
		No:         b([]string{"n", "N", "esc"}, "n/esc", "no"),
		Back:       b([]string{"esc"}, "esc", "back"),
		Next:       b([]string{"enter"}, "enter", "next"),
		NextField:  b([]string{"tab", "down"}, "tab/↓", "next field"),
		PrevField:  b([]string{"shift+tab", "up"}, "shift+tab/↑", "previous field"),
		Submit:     b([]string{"enter", "ctrl+s"}, "enter", "save"),
		Cycle:      b([]string{"left", "right", "space"}, "←/→", "change choice"),
		OpenPicker: b([]string{"ctrl+o"}, "ctrl+o", "browse files"),
		Reload:     b([]string{"r"}, "r", "reload"),
		Detach:     b([]string{"ctrl+]"}, "ctrl+]", "detach"),

		TakeSnap:    b([]string{"n"}, "n", "take snapshot"),
		RestoreSnap: b([]string{"R"}, "R", "restore"),
		DeleteSnap:  b([]string{"D"}, "D", "delete"),

		AddForward:    b([]string{"a"}, "a", "add forward"),
		RemoveForward: b([]string{"d", "delete"}, "d", "remove forward"),
		AddShare:      b([]string{"a"}, "a", "add share"),
		RemoveShare:   b([]string{"d", "delete"}, "d", "remove share"),
		OpenGallery:   b([]string{"ctrl+g"}, "ctrl+g", "gallery"),

		RunLine:     b([]string{"enter"}, "enter", "run"),
		HistoryPrev: b([]string{"up", "ctrl+p"}, "↑/↓", "history"),
		HistoryNext: b([]string{"down", "ctrl+n"}, "↓", "history"),
		Complete:    b([]string{"tab"}, "tab", "complete"),
		ToggleTrace: b([]string{"ctrl+t"}, "ctrl+t", "trace log"),
		ReloadTrace: b([]string{"ctrl+r"}, "ctrl+r", "re-read trace"),
		// F-keys, and alt+digit for terminals that keep F1 for themselves.
		MonitorShortcuts: []MonitorShortcut{
			{b([]string{"f1", "alt+1"}, "f1", "registers"), "info registers"},
			{b([]string{"f2", "alt+2"}, "f2", "memory tree"), "info mtree -f"},
			{b([]string{"f3", "alt+3"}, "f3", "PCI"), "info pci"},
			{b([]string{"f4", "alt+4"}, "f4", "IRQs"), "info irq"},
			{b([]string{"f5", "alt+5"}, "f5", "TLB"), "info tlb"},
		},
	}
}

// bindings adapts fixed binding lists to help.KeyMap.
type bindings struct {
	short []key.Binding
	full  [][]key.Binding
}

func (b bindings) ShortHelp() []key.Binding  { return b.short }
func (b bindings) FullHelp() [][]key.Binding { return b.full }

// listHelp is the help of the main screen: movement, then New, Import, the
// actions of listActions in their order, help and quit, in three columns
// at least seven tall (as many as the movement column holds), so that the
// four columns fit in 80 cells.
func (k KeyMap) listHelp() bindings {
	all := []key.Binding{k.New, k.Import}
	for _, a := range listActions() {
		all = append(all, a.key(&k))
	}
	all = append(all, k.Help, k.Quit)
	full := [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom, k.Filter}}
	per := max(7, (len(all)+2)/3)
	for len(all) > 0 {
		n := min(per, len(all))
		full = append(full, all[:n])
		all = all[n:]
	}
	return bindings{
		short: []key.Binding{k.New, k.Start, k.Stop, k.Serial, k.Edit, k.Filter, k.Help, k.Quit},
		full:  full,
	}
}
