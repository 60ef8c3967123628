package tui

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/filepicker"
	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"vlab/emulator"
	"vlab/machine"
)

type wizStep int

const (
	stepName wizStep = iota
	stepProfile
	stepSource
	stepHardware
	stepNetwork
	stepReview
)

var stepNames = []string{"Name", "OS", "Install", "Hardware", "Network", "Review"}

// Install source choices.
const (
	srcISO    = "ISO image"
	srcCloud  = "cloud image"
	srcKernel = "kernel + initrd"
	srcNone   = "none (empty disk)"
)

// The fields of the source page, in order (w.source.fields[i]).
const (
	srcFieldKind = iota
	srcFieldISO
	srcFieldImage
	srcFieldUser
	srcFieldKernel
	srcFieldInitrd
	srcFieldAppend
	srcFieldShares
)

const (
	defaultMemoryMiB = 1024
	defaultCPUs      = 1
	defaultDiskGiB   = 8
)

// wizard is the new-machine wizard: name → OS profile → install source →
// hardware → network → review (with the exact qemu command line) → create.
type wizard struct {
	m             *Model
	step          wizStep
	width, height int

	name        *field
	nameChecked string // value the last validation answer was for
	nameErr     error
	nameNext    bool // advance once the pending check passes

	profiles   []Profile
	profErr    error
	search     textinput.Model
	profVis    []int
	profCursor int
	profile    Profile

	source   *form
	hardware *form
	network  *form
	srcErr   error

	mac        string // chosen once, so the previewed command line is the one created
	preview    []string
	previewErr error
	creating   bool

	picker    *filepicker.Model
	pickField *field

	gallery    []GalleryEntry // the OS gallery, all arches and kinds
	galleryErr error
	galPick    *galleryPick // the gallery list, open over the source page
	shares     []Share      // the Shares field, parsed by the last source check
}

// galleryPick is the gallery list opened with ctrl+g from the ISO or the
// cloud image field: the entries of that kind for the machine's arch.
type galleryPick struct {
	field  *field
	kind   string
	items  []GalleryEntry
	cursor int
}

// Messages private to the wizard.
type (
	nameCheckMsg struct {
		w     *wizard
		value string
		err   error
	}
	wizProfilesMsg struct {
		w        *wizard
		profiles []Profile
		err      error
	}
	sourceCheckMsg struct {
		w      *wizard
		shares []Share
		err    error
	}
	wizGalleryMsg struct {
		w       *wizard
		entries []GalleryEntry
		err     error
	}
	previewMsg struct {
		w    *wizard
		argv []string
		err  error
	}
)

func newWizard(m *Model) *wizard {
	w := &wizard{m: m, mac: randomMAC()}
	w.name = textField("Name", "", "e.g. debian-test", nil)
	w.name.input.CharLimit = 200
	w.name.input.Focus()
	w.search = newTextInput()
	w.search.Prompt = "search: "
	w.search.Placeholder = "type to filter profiles"
	w.search.CharLimit = 64

	w.source = newForm(
		choiceField("Boot from", []string{srcISO, srcCloud, srcKernel, srcNone}, srcISO),
		textField("ISO image", "", "/path/to/installer.iso or a gallery id", nil),
		textField("Image", "", "a gallery id (ctrl+g), an http(s) URL or a qcow2/raw file", nil),
		textField("User", machine.DefaultUser, "login user", machine.ValidateUser),
		textField("Kernel", "", "/path/to/vmlinuz", nil),
		textField("Initrd", "", "/path/to/initrd (optional)", nil),
		textField("Append", "", "console=ttyS0 (optional)", nil),
		textField("Shares", "", "optional: DIR[,tag=T][,ro]; several separated by ;", nil),
	)
	for _, i := range []int{srcFieldISO, srcFieldImage, srcFieldKernel, srcFieldInitrd} {
		w.source.fields[i].picker = true
	}
	w.source.fields[srcFieldISO].hint = "ctrl+g picks from the gallery · ctrl+o browses files"
	w.source.fields[srcFieldImage].hint = "ctrl+g picks from the gallery · ctrl+o browses files · or an http(s) URL"
	w.source.fields[srcFieldUser].hint = "gets your SSH key (and vlab's); S opens a shell once it runs"
	w.source.fields[srcFieldKernel].hint = "ctrl+o browses for the file"
	w.source.fields[srcFieldShares].hint = "host folders the guest mounts (cloud images at /mnt/TAG); F edits them later"
	w.syncSource()
	w.network = newForm(
		choiceField("Network", netChoices, string(emulator.NetUser)),
		textField("Forwards", "", "e.g. 2222:22, 8080:80 (host:guest)", func(s string) error { _, err := parseForwards(s); return err }),
		choiceField("Display", []string{string(emulator.DisplayVNC), string(emulator.DisplayNone)}, string(emulator.DisplayVNC)),
	)
	w.network.fields[1].hint = "forwards listen on 127.0.0.1"
	w.setProfile(Profile{Name: emulator.HostArch().String(), Arch: emulator.HostArch()})
	return w
}

// Title implements the title bar.
func (w *wizard) Title() string { return "New machine" }

func (w *wizard) Init() tea.Cmd {
	ctx, svc := w.m.ctx, w.m.svc
	return tea.Batch(w.name.input.Focus(), func() tea.Msg {
		p, err := svc.Profiles(ctx)
		return wizProfilesMsg{w: w, profiles: p, err: err}
	}, func() tea.Msg {
		g, err := svc.Gallery(ctx)
		return wizGalleryMsg{w: w, entries: g, err: err}
	}, hostCmd(ctx, svc))
}

func (w *wizard) SetSize(wd, h int) {
	w.width, w.height = wd, h
	for _, f := range []*form{w.source, w.hardware, w.network} {
		if f != nil {
			f.width = wd
		}
	}
	if w.picker != nil {
		w.picker.SetHeight(max(3, h-5))
	}
}

// typing reports whether keys are text right now.
func (w *wizard) typing() bool {
	switch w.step {
	case stepName, stepProfile:
		return true
	case stepSource:
		return w.picker == nil && w.galPick == nil && w.source.typing()
	case stepHardware:
		return w.hardware.typing()
	case stepNetwork:
		return w.network.typing()
	}
	return false
}

func (w *wizard) Help() help.KeyMap {
	k := &w.m.keys
	next := k.Next
	if w.step == stepReview {
		next = key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "create"))
	}
	back := k.Back
	if w.step == stepName {
		back = key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel"))
	}
	switch {
	case w.galPick != nil:
		return bindings{short: []key.Binding{
			key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "move")), key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "select")),
			key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close")),
		}}
	case w.picker != nil:
		return bindings{short: []key.Binding{
			key.NewBinding(key.WithHelp("↑/↓", "move")), key.NewBinding(key.WithHelp("enter/→", "open/select")),
			key.NewBinding(key.WithHelp("←/h", "parent dir")), key.NewBinding(key.WithHelp("esc", "close")),
		}}
	case w.step == stepProfile:
		return bindings{short: []key.Binding{next, back, key.NewBinding(key.WithHelp("↑/↓", "choose")), key.NewBinding(key.WithHelp("type", "search"))}}
	case w.step == stepSource:
		return bindings{short: []key.Binding{next, back, k.NextField, k.Cycle, k.OpenPicker, k.OpenGallery}}
	case w.step == stepHardware || w.step == stepNetwork:
		return bindings{short: []key.Binding{next, back, k.NextField, k.Cycle}}
	}
	return bindings{short: []key.Binding{next, back}}
}

// syncSource shows the fields of the chosen install source.
func (w *wizard) syncSource() {
	kind := w.source.fields[srcFieldKind].Value()
	f := w.source.fields
	f[srcFieldISO].hidden = kind != srcISO
	f[srcFieldImage].hidden, f[srcFieldUser].hidden = kind != srcCloud, kind != srcCloud
	for _, i := range []int{srcFieldKernel, srcFieldInitrd, srcFieldAppend} {
		f[i].hidden = kind != srcKernel
	}
}

// galleryOf returns the gallery entries of kind for the machine's arch.
func (w *wizard) galleryOf(kind string) []GalleryEntry {
	var out []GalleryEntry
	for _, e := range w.gallery {
		if e.Kind == kind && e.Arch == w.profile.Arch.String() {
			out = append(out, e)
		}
	}
	return out
}

// galleryEntry returns the gallery entry a source field names: a value
// without a slash that is the id of an entry of kind for the machine's
// arch (anything else is a file or a URL).
func (w *wizard) galleryEntry(value, kind string) (GalleryEntry, bool) {
	if value == "" || strings.Contains(value, "/") {
		return GalleryEntry{}, false
	}
	for _, e := range w.galleryOf(kind) {
		if e.ID == value {
			return e, true
		}
	}
	return GalleryEntry{}, false
}

// openGallery opens the gallery list for the chosen source (an installer
// ISO or a cloud image).
func (w *wizard) openGallery() {
	f, kind := w.source.fields[srcFieldISO], KindISO
	switch w.source.fields[srcFieldKind].Value() {
	case srcCloud:
		f, kind = w.source.fields[srcFieldImage], KindCloud
	case srcISO:
	default:
		w.srcErr = errors.New("the gallery has installer ISOs and cloud images: choose one of those sources first")
		return
	}
	gp := &galleryPick{field: f, kind: kind, items: w.galleryOf(kind)}
	for i, e := range gp.items {
		if e.ID == f.Value() {
			gp.cursor = i
		}
	}
	w.galPick, w.srcErr = gp, nil
}

func (w *wizard) updateGallery(msg tea.Msg) tea.Cmd {
	km, ok := msg.(tea.KeyPressMsg)
	if !ok {
		return nil
	}
	gp := w.galPick
	switch km.String() {
	case "esc":
		w.galPick = nil
	case "up", "k", "ctrl+p", "shift+tab":
		gp.cursor = max(0, gp.cursor-1)
	case "down", "j", "ctrl+n", "tab":
		gp.cursor = max(0, min(len(gp.items)-1, gp.cursor+1))
	case "enter":
		if len(gp.items) > 0 {
			gp.field.input.SetValue(gp.items[gp.cursor].ID)
			gp.field.check()
		}
		w.galPick = nil
	}
	return nil
}

// setProfile applies a profile's suggested sizes, bounded by the host.
func (w *wizard) setProfile(p Profile) {
	w.profile = p
	mem, cpus, disk := p.MemoryMiB, p.CPUs, int(p.DiskBytes>>30)
	if mem == 0 {
		mem = defaultMemoryMiB
	}
	if cpus == 0 {
		cpus = defaultCPUs
	}
	if disk == 0 {
		disk = defaultDiskGiB
	}
	h := w.m.host
	if h.MemoryMiB > 0 {
		mem = min(mem, h.MemoryMiB/2)
	}
	if h.CPUs > 0 {
		cpus = min(cpus, h.CPUs)
	}
	if h.FreeDiskBytes > 0 {
		disk = min(disk, int(h.FreeDiskBytes>>30))
	}
	w.hardware = newForm(
		textField("Memory (MiB)", strconv.Itoa(mem), "", nil),
		textField("CPUs", strconv.Itoa(cpus), "", nil),
		textField("Disk (GiB)", strconv.Itoa(disk), "", nil),
	)
	w.hardware.width = w.width
	w.boundHardware()
	if w.network != nil { // the profile's network: sandbox for old systems
		net := p.Net
		if net == "" {
			net = emulator.NetUser
		}
		for i, c := range netChoices {
			if c == string(net) {
				w.network.fields[0].choice = i
			}
		}
	}
}

// netChoices are the wizard's network modes: user (NAT; the guest also
// reaches the host's loopback as 10.0.2.2), sandbox (internet but not the
// host, through passt) and none.
var netChoices = []string{string(emulator.NetUser), string(emulator.NetSandbox), string(emulator.NetNone)}

// boundHardware (re)sets the hardware validators from the host limits.
func (w *wizard) boundHardware() {
	h := w.m.host
	memMax := h.MemoryMiB
	w.hardware.fields[0].validate = intIn("memory", 16, memMax, fmt.Sprintf("the host has %s", fmtBytes(int64(memMax)<<20)))
	w.hardware.fields[0].hint = fmt.Sprintf("16 to %d MiB", memMax)
	w.hardware.fields[1].validate = intIn("CPUs", 1, h.CPUs, fmt.Sprintf("the host has %d", h.CPUs))
	w.hardware.fields[1].hint = fmt.Sprintf("1 to %d", h.CPUs)
	freeGiB := int(h.FreeDiskBytes >> 30)
	w.hardware.fields[2].validate = intIn("disk size", 0, freeGiB, fmt.Sprintf("%s free on the library's disk", fmtBytes(h.FreeDiskBytes)))
	w.hardware.fields[2].hint = fmt.Sprintf("0 (no disk) to %d GiB free", freeGiB)
	if h.MemoryMiB == 0 {
		w.hardware.fields[0].hint = ""
	}
	for _, f := range w.hardware.fields {
		f.check()
	}
}

func (w *wizard) refilterProfiles() {
	q := strings.ToLower(strings.TrimSpace(w.search.Value()))
	w.profVis = w.profVis[:0]
	for i, p := range w.profiles {
		if q == "" || strings.Contains(strings.ToLower(p.Name+" "+p.Description+" "+p.Arch.String()), q) {
			w.profVis = append(w.profVis, i)
		}
	}
	w.profCursor = min(max(0, w.profCursor), max(0, len(w.profVis)-1))
}

func (w *wizard) checkName() tea.Cmd {
	v := w.name.Value()
	svc := w.m.svc
	return func() tea.Msg { return nameCheckMsg{w: w, value: v, err: svc.ValidateName(v)} }
}

func (w *wizard) Update(msg tea.Msg) tea.Cmd {
	if cmd, ok := w.answer(msg); ok {
		return cmd
	}
	if w.galPick != nil {
		return w.updateGallery(msg)
	}
	if w.picker != nil {
		return w.updatePicker(msg)
	}
	km, isKey := msg.(tea.KeyPressMsg)
	if isKey && w.creating {
		return nil // the footer shows the job; keys wait for it
	}
	if isKey {
		switch km.String() {
		case "esc":
			if w.step == stepName {
				return func() tea.Msg { return closeViewMsg{} }
			}
			return w.goTo(w.step - 1)
		case "enter":
			return w.next()
		}
	}
	return w.updateStep(msg)
}

// answer takes the answers of the wizard's own commands (name and source
// checks, profiles, gallery, preview, host limits); ok is false for any
// other message.
func (w *wizard) answer(msg tea.Msg) (cmd tea.Cmd, ok bool) {
	switch msg := msg.(type) {
	case nameCheckMsg:
		if msg.w == w && msg.value == w.name.Value() {
			w.nameChecked, w.nameErr = msg.value, msg.err
			next := w.nameNext && msg.err == nil
			w.nameNext = false
			if next {
				return w.goTo(stepProfile), true
			}
		}
	case wizProfilesMsg:
		if msg.w == w {
			w.profiles, w.profErr = msg.profiles, msg.err
			if msg.err != nil || len(w.profiles) == 0 {
				w.profiles = DefaultProfiles()
			}
			w.refilterProfiles()
		}
	case hostMsg:
		if msg.err == nil {
			w.boundHardware()
		}
	case sourceCheckMsg:
		if msg.w == w {
			w.srcErr = msg.err
			if msg.err == nil {
				w.shares = msg.shares
				return w.goTo(stepHardware), true
			}
		}
	case wizGalleryMsg:
		if msg.w == w {
			w.gallery, w.galleryErr = msg.entries, msg.err
		}
	case previewMsg:
		if msg.w == w {
			w.preview, w.previewErr = msg.argv, msg.err
		}
	default:
		return nil, false
	}
	return nil, true
}

// updateStep hands a message to the current step's form.
func (w *wizard) updateStep(msg tea.Msg) tea.Cmd {
	km, isKey := msg.(tea.KeyPressMsg)
	switch w.step {
	case stepName:
		var cmd tea.Cmd
		before := w.name.input.Value()
		w.name.input, cmd = w.name.input.Update(msg)
		if w.name.input.Value() != before {
			return tea.Batch(cmd, w.checkName())
		}
		return cmd
	case stepProfile:
		if isKey {
			switch km.String() {
			case "up", "ctrl+p":
				w.profCursor = max(0, w.profCursor-1)
				return nil
			case "down", "ctrl+n", "tab":
				w.profCursor = min(len(w.profVis)-1, w.profCursor+1)
				return nil
			}
		}
		var cmd tea.Cmd
		w.search, cmd = w.search.Update(msg)
		w.refilterProfiles()
		return cmd
	case stepSource:
		if isKey && key.Matches(km, w.m.keys.OpenPicker) {
			if f := w.source.current(); f != nil && f.picker {
				return w.openPicker(f)
			}
		}
		if isKey && key.Matches(km, w.m.keys.OpenGallery) {
			w.openGallery()
			return nil
		}
		cmd := w.source.Update(msg, &w.m.keys)
		w.syncSource()
		w.srcErr = nil
		return cmd
	case stepHardware:
		return w.hardware.Update(msg, &w.m.keys)
	case stepNetwork:
		cmd := w.network.Update(msg, &w.m.keys)
		w.network.fields[1].hidden = w.network.fields[0].Value() == string(emulator.NetNone)
		return cmd
	}
	return nil
}

func (w *wizard) openPicker(f *field) tea.Cmd {
	fp := filepicker.New()
	fp.ShowPermissions = false
	fp.ShowSize = false // directory sizes differ between filesystems; the name is what counts
	fp.AutoHeight = false
	fp.KeyMap.Back = key.NewBinding(key.WithKeys("h", "backspace", "left"))
	dir := filepath.Dir(f.Value())
	if f.Value() == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = home
		} else {
			dir = "/"
		}
	}
	fp.CurrentDirectory = dir
	switch f {
	case w.source.fields[srcFieldISO]:
		fp.AllowedTypes = []string{".iso", ".ISO", ".img", ".raw"}
	case w.source.fields[srcFieldImage]:
		fp.AllowedTypes = []string{".qcow2", ".img", ".raw", ".vmdk", ".vdi", ".vhdx"}
	}
	fp.SetHeight(max(3, w.height-5))
	w.picker, w.pickField = &fp, f
	return fp.Init()
}

func (w *wizard) updatePicker(msg tea.Msg) tea.Cmd {
	if km, ok := msg.(tea.KeyPressMsg); ok && km.String() == "esc" {
		w.picker, w.pickField = nil, nil
		return nil
	}
	fp, cmd := w.picker.Update(msg)
	w.picker = &fp
	if ok, path := fp.DidSelectFile(msg); ok {
		w.pickField.input.SetValue(path)
		w.pickField.check()
		w.picker, w.pickField = nil, nil
		w.srcErr = nil
	} else if ok, path := fp.DidSelectDisabledFile(msg); ok {
		if w.pickField == w.source.fields[srcFieldImage] {
			w.srcErr = fmt.Errorf("%s is not a disk image (.qcow2, .img, .raw, .vmdk, .vdi, .vhdx)", filepath.Base(path))
		} else {
			w.srcErr = fmt.Errorf("%s is not an ISO image (.iso, .img)", filepath.Base(path))
		}
	}
	return cmd
}

// goTo moves to a step, running what the step needs on entry.
func (w *wizard) goTo(s wizStep) tea.Cmd {
	if s < stepName {
		s = stepName
	}
	w.step = s
	switch s {
	case stepName:
		return w.name.input.Focus()
	case stepHardware:
		disk := w.hardware.fields[2]
		if w.source.fields[srcFieldKind].Value() == srcCloud {
			disk.label, disk.hint = "Disk (GiB)", "0 keeps the image's own size"
		} else {
			w.boundHardware()
		}
	case stepProfile:
		w.refilterProfiles()
		return w.search.Focus()
	case stepReview:
		w.preview, w.previewErr = nil, nil
		spec, err := w.spec()
		if err != nil {
			w.previewErr = err
			return nil
		}
		ctx, svc := w.m.ctx, w.m.svc
		return func() tea.Msg {
			argv, err := svc.PreviewCmdline(ctx, spec)
			return previewMsg{w: w, argv: argv, err: err}
		}
	}
	return nil
}

// next validates the current step and moves on (or creates, on review).
func (w *wizard) next() tea.Cmd {
	switch w.step {
	case stepName:
		if w.nameChecked != w.name.Value() {
			w.nameNext = true
			return w.checkName()
		}
		if w.nameErr != nil {
			return nil
		}
		return w.goTo(stepProfile)
	case stepProfile:
		if len(w.profVis) == 0 {
			return nil
		}
		w.setProfile(w.profiles[w.profVis[w.profCursor]])
		return w.goTo(stepSource)
	case stepSource:
		if !w.source.valid() {
			return nil
		}
		return w.checkSource()
	case stepHardware:
		if !w.hardware.valid() {
			return nil
		}
		return w.goTo(stepNetwork)
	case stepNetwork:
		if !w.network.valid() {
			return nil
		}
		return w.goTo(stepReview)
	case stepReview:
		return w.create()
	}
	return nil
}

// checkSource stats the install files and the shared folders off the UI
// goroutine. A gallery id or a URL is checked when the machine is created
// (it is downloaded then).
func (w *wizard) checkSource() tea.Cmd {
	var paths []string
	var what []string
	f := w.source.fields
	switch f[srcFieldKind].Value() {
	case srcISO:
		paths, what = []string{f[srcFieldISO].Value()}, []string{"ISO image"}
		if paths[0] == "" {
			w.srcErr = errors.New("choose an ISO image (ctrl+o browses, ctrl+g picks from the gallery), or another source")
			return nil
		}
		if _, ok := w.galleryEntry(paths[0], KindISO); ok {
			paths, what = nil, nil
		}
	case srcCloud:
		img := f[srcFieldImage].Value()
		switch {
		case img == "":
			w.srcErr = errors.New("choose a cloud image: ctrl+g picks one from the gallery, or give an http(s) URL or an image file")
			return nil
		case isURL(img):
		default:
			if _, ok := w.galleryEntry(img, KindCloud); !ok {
				if e, ok := w.galleryEntry(img, KindISO); ok {
					w.srcErr = fmt.Errorf("gallery: %s is an installer ISO, not a cloud image: choose it as the ISO image", e.ID)
					return nil
				}
				paths, what = []string{img}, []string{"image"}
			}
		}
	case srcKernel:
		paths, what = []string{f[srcFieldKernel].Value()}, []string{"kernel"}
		if paths[0] == "" {
			w.srcErr = errors.New("choose a kernel (ctrl+o browses)")
			return nil
		}
		if p := f[srcFieldInitrd].Value(); p != "" {
			paths, what = append(paths, p), append(what, "initrd")
		}
	}
	shareSpecs := splitShares(f[srcFieldShares].Value())
	return func() tea.Msg {
		for i, p := range paths {
			fi, err := os.Stat(p)
			switch {
			case err != nil:
				return sourceCheckMsg{w: w, err: fmt.Errorf("%s %s: %w", what[i], p, errors.Unwrap(err))}
			case fi.IsDir():
				return sourceCheckMsg{w: w, err: fmt.Errorf("%s %s is a directory", what[i], p)}
			}
		}
		var shares []Share
		for _, s := range shareSpecs {
			sh, err := machine.ParseShare(s) // as --share reads it: the folder must exist
			if err != nil {
				return sourceCheckMsg{w: w, err: err}
			}
			shares = append(shares, sh)
		}
		if err := machine.CheckShares(shares); err != nil {
			return sourceCheckMsg{w: w, err: err}
		}
		return sourceCheckMsg{w: w, shares: shares}
	}
}

// splitShares splits the Shares field: share specs separated by ';' (a
// share's own options are separated by ',').
func splitShares(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// isURL reports whether s is an http(s) URL (a cloud image to download).
func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// spec builds the NewVM from the pages.
func (w *wizard) spec() (NewVM, error) {
	s := NewVM{Name: w.name.Value(), Profile: w.profile.Name, Arch: w.profile.Arch}
	f := w.source.fields
	image := ""
	switch f[srcFieldKind].Value() {
	case srcISO:
		s.ISO = f[srcFieldISO].Value()
		if e, ok := w.galleryEntry(s.ISO, KindISO); ok {
			s.ISO, s.OS = "", e.ID
		}
	case srcCloud:
		s.Image, s.User = f[srcFieldImage].Value(), f[srcFieldUser].Value()
		if _, ok := w.galleryEntry(s.Image, KindCloud); !ok && !isURL(s.Image) {
			image, s.Image = s.Image, "" // a file: made absolute below
		}
	case srcKernel:
		s.Kernel, s.Initrd, s.Append = f[srcFieldKernel].Value(), f[srcFieldInitrd].Value(), f[srcFieldAppend].Value()
	}
	var err error
	for _, p := range []*string{&s.ISO, &s.Kernel, &s.Initrd, &image} { // absolute, as the CLI makes them
		if *p, err = machine.AbsPath(*p); err != nil {
			return s, err
		}
	}
	if image != "" {
		s.Image = image
	}
	s.Shares = w.shares
	if s.MemoryMiB, err = strconv.Atoi(w.hardware.fields[0].Value()); err != nil {
		return s, fmt.Errorf("memory: %w", err)
	}
	if s.CPUs, err = strconv.Atoi(w.hardware.fields[1].Value()); err != nil {
		return s, fmt.Errorf("CPUs: %w", err)
	}
	gib, err := strconv.Atoi(w.hardware.fields[2].Value())
	if err != nil {
		return s, fmt.Errorf("disk size: %w", err)
	}
	s.DiskBytes = int64(gib) << 30
	s.Net = emulator.NetMode(w.network.fields[0].Value())
	s.MAC = w.mac
	if s.Net == emulator.NetUser || s.Net == emulator.NetSandbox {
		if s.Forwards, err = parseForwards(w.network.fields[1].Value()); err != nil {
			return s, err
		}
	}
	s.Display = emulator.Display(w.network.fields[2].Value())
	if err := checkNewVM(s); err != nil { // validate.go: the checks of vlab create
		return s, err
	}
	return s, nil
}

func (w *wizard) create() tea.Cmd {
	spec, err := w.spec()
	if err != nil {
		w.previewErr = err
		return nil
	}
	w.creating = true
	ctx, svc := w.m.ctx, w.m.svc
	return startJobCmd(jobSpec{
		title: "creating " + spec.Name, op: "create", name: spec.Name, ok: "created " + spec.Name + " — press s to start it",
		run: func(p ProgressFunc) error { return svc.Create(ctx, spec, p) },
		then: func(m *Model) tea.Cmd {
			if m.view == view(w) {
				m.view = nil
				m.layout()
			}
			m.selectNew = spec.Name
			return nil
		},
		fail: func(m *Model) tea.Cmd { w.creating = false; return nil },
	})
}

func (w *wizard) View() string {
	st := &w.m.styles
	var steps []string
	for i, n := range stepNames {
		label := fmt.Sprintf("%d %s", i+1, n)
		if wizStep(i) == w.step {
			steps = append(steps, st.StepOn.Render(label))
		} else {
			steps = append(steps, st.Step.Render(label))
		}
	}
	head := strings.Join(steps, st.Muted.Render(" › "))
	var body string
	if w.galPick != nil {
		body = w.galleryView()
	} else if w.picker != nil {
		body = st.PaneTitle.Render("Choose a file for "+w.pickField.label) + "\n" +
			st.Muted.Render(w.picker.CurrentDirectory) + "\n\n" + w.picker.View()
		if w.srcErr != nil {
			body += "\n" + st.FieldErr.Render("✗ "+w.srcErr.Error())
		}
	} else {
		body = w.pageView()
	}
	return head + "\n\n" + body
}

// galleryView is the gallery list: the entries of one kind for the
// machine's arch, id and title.
func (w *wizard) galleryView() string {
	st := &w.m.styles
	gp := w.galPick
	what := map[string]string{KindISO: "installer ISOs", KindCloud: "cloud images"}[gp.kind]
	s := st.PaneTitle.Render("The gallery's "+w.profile.Arch.String()+" "+what) + "\n" +
		st.Muted.Render(fit("downloaded once, checksum-verified, when the machine is created", max(10, w.width))) + "\n\n"
	if w.galleryErr != nil {
		return s + st.FieldErr.Render("✗ gallery: "+w.galleryErr.Error())
	}
	if len(gp.items) == 0 {
		return s + st.Muted.Render("The gallery has no "+w.profile.Arch.String()+" "+what+": esc goes back (give a file or a URL instead).")
	}
	rows := max(1, w.height-6)
	top := max(0, gp.cursor-rows+1)
	for i := top; i < len(gp.items) && i < top+rows; i++ {
		e := gp.items[i]
		line := fit(fit(e.ID, 20)+" "+e.Title, max(10, w.width-2))
		if i == gp.cursor {
			s += st.Selected.Render("› "+line) + "\n"
		} else {
			s += "  " + line + "\n"
		}
	}
	return strings.TrimSuffix(s, "\n")
}

func (w *wizard) pageView() string {
	st := &w.m.styles
	switch w.step {
	case stepName:
		w.name.input.SetWidth(max(10, min(50, w.width-20)))
		s := st.Bold.Render("What should the machine be called?") + "\n\n" +
			st.Input.Render("› Name  ") + w.name.input.View() + "\n"
		switch {
		case w.name.Value() == "":
			s += st.Muted.Render("  letters, digits, '-', '_' and '.'")
		case w.nameChecked != w.name.Value():
			s += st.Muted.Render("  checking…")
		case w.nameErr != nil:
			s += st.FieldErr.Render("  ✗ " + w.nameErr.Error())
		default:
			s += st.StatusOK.Render("  ✓ available")
		}
		return s
	case stepProfile:
		w.search.SetWidth(max(10, min(50, w.width-12)))
		s := st.Bold.Render("Which operating system (profile)?") + "\n\n" + w.search.View() + "\n\n"
		if w.profErr != nil {
			s += st.FieldErr.Render("✗ profiles: "+w.profErr.Error()+" (showing the arch defaults)") + "\n"
		}
		rows := max(1, w.height-8)
		top := max(0, w.profCursor-rows+1)
		if len(w.profVis) == 0 {
			s += st.Muted.Render("no profile matches")
		}
		for i := top; i < len(w.profVis) && i < top+rows; i++ {
			p := w.profiles[w.profVis[i]]
			line := fit(p.Name, 16) + " " + fit(p.Arch.String(), 8) + " " + p.Description
			line = fit(line, max(10, w.width-2))
			if i == w.profCursor {
				s += st.Selected.Render("› "+line) + "\n"
			} else {
				s += "  " + line + "\n"
			}
		}
		return strings.TrimSuffix(s, "\n")
	case stepSource:
		s := st.Bold.Render("How is the operating system installed?") + "\n\n" + w.source.View(st)
		if note := w.sourceNote(); note != "" && w.srcErr == nil {
			s += "\n\n" + st.StatusOK.Render(ansi.Truncate(note, max(10, w.width), "…"))
		}
		if w.srcErr != nil {
			s += "\n\n" + st.FieldErr.Render("✗ "+w.srcErr.Error())
		}
		return s
	case stepHardware:
		h := w.m.host
		s := st.Bold.Render("Memory, CPUs and disk") + "  " +
			st.Muted.Render(fmt.Sprintf("(host: %d CPUs, %s RAM, %s free)", h.CPUs, fmtBytes(int64(h.MemoryMiB)<<20), fmtBytes(h.FreeDiskBytes))) +
			"\n\n" + w.hardware.View(st)
		if w.source.fields[srcFieldKind].Value() == srcCloud {
			s += "\n\n" + st.Muted.Render(ansi.Truncate("The disk is the cloud image's copy: it grows to the size given (0: the image's own size).", max(10, w.width), "…"))
		}
		return s
	case stepNetwork:
		return st.Bold.Render("Network and display") + "\n\n" + w.network.View(st)
	case stepReview:
		return w.reviewView()
	}
	return ""
}

// sourceNote says what a gallery id in the source fields stands for.
func (w *wizard) sourceNote() string {
	f := w.source.fields
	switch f[srcFieldKind].Value() {
	case srcISO:
		if e, ok := w.galleryEntry(f[srcFieldISO].Value(), KindISO); ok {
			return "✓ gallery: " + e.Title + " — downloaded into the ISO library when created"
		}
	case srcCloud:
		if e, ok := w.galleryEntry(f[srcFieldImage].Value(), KindCloud); ok {
			return "✓ gallery: " + e.Title + " — downloaded once into the cache when created"
		}
	}
	return ""
}

func (w *wizard) reviewView() string {
	st := &w.m.styles
	spec, err := w.spec()
	var b strings.Builder
	b.WriteString(st.Bold.Render("Review") + "\n\n")
	if err != nil {
		b.WriteString(st.FieldErr.Render("✗ " + err.Error()))
		return b.String()
	}
	row := func(k, v string) {
		b.WriteString(st.Label.Render(fit(k, formLabelWidth)) + ansi.Truncate(v, max(10, w.width-formLabelWidth), "…") + "\n")
	}
	row("Name", spec.Name)
	row("OS", fmt.Sprintf("%s (%s)", spec.Profile, spec.Arch))
	row("Install", w.installSource(spec))
	if spec.Image != "" {
		row("Login", "user "+orDefault(spec.User, machine.DefaultUser)+" with your SSH key; an SSH forward on a free port (S opens a shell)")
	}
	disk := "no disk"
	switch {
	case spec.Image != "" && spec.DiskBytes > 0:
		disk = "the image's disk, grown to " + fmtBytes(spec.DiskBytes)
	case spec.Image != "":
		disk = "the image's disk"
	case spec.DiskBytes > 0:
		disk = fmtBytes(spec.DiskBytes) + " disk"
	}
	row("Hardware", fmt.Sprintf("%d vCPU · %s RAM · %s", spec.CPUs, fmtBytes(int64(spec.MemoryMiB)<<20), disk))
	netS := string(spec.Net)
	if len(spec.Forwards) > 0 {
		netS += ", forwards " + formatForwards(spec.Forwards)
	}
	row("Network", netS)
	row("Display", string(spec.Display))
	for i, sh := range spec.Shares {
		label := ""
		if i == 0 {
			label = "Shares"
		}
		row(label, sh.HostDir+" → "+sh.Tag+" ("+sh.GuestPath()+")"+roText(sh.ReadOnly))
	}
	b.WriteString("\n" + st.PaneTitle.Render("QEMU command line") + "\n")
	w.writePreview(&b)
	if w.creating {
		b.WriteString("\n" + st.StatusMsg.Render("creating…"))
	} else {
		b.WriteString("\n" + st.Muted.Render("enter creates the machine · esc goes back"))
	}
	return b.String()
}

// installSource says what the new VM installs or boots from.
func (w *wizard) installSource(spec NewVM) string {
	switch {
	case spec.OS != "":
		e, _ := w.galleryEntry(spec.OS, KindISO)
		return "ISO " + spec.OS + " from the gallery, downloaded into the ISO library when created (" + e.Title + ")"
	case spec.Image != "":
		src := "cloud image " + spec.Image
		e, fromGallery := w.galleryEntry(spec.Image, KindCloud)
		if fromGallery {
			src += " from the gallery"
		}
		if fromGallery || isURL(spec.Image) {
			src += ", downloaded when created"
		}
		if fromGallery {
			src += " (" + e.Title + ")"
		}
		return src
	case spec.ISO != "":
		return "ISO " + spec.ISO
	case spec.Kernel != "":
		return strings.TrimSpace("kernel " + spec.Kernel + " " + spec.Initrd + " " + spec.Append)
	}
	return "nothing (empty disk)"
}

// writePreview writes the QEMU command line the VM would get, cut to the
// screen's height, or why there is none.
func (w *wizard) writePreview(b *strings.Builder) {
	st := &w.m.styles
	switch {
	case w.previewErr != nil:
		b.WriteString(st.FieldErr.Render("✗ "+w.previewErr.Error()) + "\n")
		if fix := fixOf(w.previewErr); fix != "" {
			b.WriteString(st.Fix.Render("fix: "+fix) + "\n")
		}
	case w.preview == nil:
		b.WriteString(st.Muted.Render("building…") + "\n")
	default:
		used := strings.Count(b.String(), "\n") + 2
		lines := strings.Split(formatArgv(w.preview, max(20, w.width-2)), "\n")
		if room := w.height - used; room > 0 && len(lines) > room {
			lines = append(lines[:room-1], st.Muted.Render(fmt.Sprintf("… %d more lines (i shows it all once created)", len(lines)-room+1)))
		}
		b.WriteString(st.Code.Render(strings.Join(lines, "\n")) + "\n")
	}
}

// randomMAC returns a locally administered MAC in QEMU's 52:54:00 range.
func randomMAC() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}
