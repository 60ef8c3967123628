package tui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	tea "charm.land/bubbletea/v2"
)

// errExportForms is the validation error of an export answer that names no
// format: the three forms the prompt reads.
var errExportForms = errors.New("write PATH.ova (an archive), ovf:DIR (a folder) or libvirt:DIR (a domain XML)")

// parseExportTarget reads the answer of the export prompt: a path ending in
// .ova is an OVA archive, ovf:DIR an OVF folder, libvirt:DIR a libvirt
// domain folder. A leading ~/ is home's.
func parseExportTarget(s, home string) (out, format string, err error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "ovf:"):
		out, format = s[len("ovf:"):], FormatOVF
	case strings.HasPrefix(s, "libvirt:"):
		out, format = s[len("libvirt:"):], FormatLibvirt
	case strings.HasSuffix(strings.ToLower(s), ".ova") && len(s) > len(".ova"):
		out, format = s, FormatOVA
	default:
		return "", "", errExportForms
	}
	out = strings.TrimSpace(out)
	if out == "" {
		return "", "", errExportForms
	}
	return absPath(expandHome(out, home)), format, nil
}

// absPath makes p absolute against the current folder, as the CLI does with
// the files it is given (p as given when that fails).
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// expandHome replaces a leading ~/ (or a lone ~) by home.
func expandHome(p, home string) string {
	if home == "" {
		return p
	}
	if p == "~" {
		return home
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		return filepath.Join(home, rest)
	}
	return p
}

// home is the user's home folder: HOME of the TUI's environment, else the
// process's.
func (m *Model) home() string {
	for _, kv := range m.opts.Env {
		if v, ok := strings.CutPrefix(kv, "HOME="); ok && v != "" {
			return v
		}
	}
	h, _ := os.UserHomeDir()
	return h
}

// pathPrompt is a prompt for a path: longer than a name.
func pathPrompt(p *promptDialog) *promptDialog {
	p.input.CharLimit = 4096
	return p
}

// exportAction exports the selected machine: a prompt for where (the
// answer's form picks the format), then a job with progress.
func (m *Model) exportAction(vm VM) tea.Cmd {
	name, ctx, home := vm.Name, m.ctx, m.home()
	if vm.State.Active() {
		m.setErr(WithFix(fmt.Errorf("export %q: machine is %s", name, vm.State), "stop it first (x, or K to force)"))
		return nil
	}
	suggest := name + ".ova"
	if home != "" {
		suggest = filepath.Join(home, suggest)
	}
	validate := func(s string) error {
		_, _, err := parseExportTarget(s, home)
		return err
	}
	m.prompt = pathPrompt(newPrompt("Export "+name+" to", "PATH.ova, ovf:DIR or libvirt:DIR", suggest, validate, func(s string) tea.Cmd {
		out, format, _ := parseExportTarget(s, home) // validated
		return m.exportJob(ctx, name, out, format)
	}))
	return nil
}

func (m *Model) exportJob(ctx context.Context, name, out, format string) tea.Cmd {
	svc := m.svc
	var sum ExportSummary
	return m.startJob(jobSpec{
		title: "exporting " + name + " to " + out, op: "export", name: name,
		run: func(p ProgressFunc) error {
			var err error
			sum, err = svc.Export(ctx, name, out, format, p)
			return err
		},
		then: func(m *Model) tea.Cmd {
			m.status = status{text: exportStatus(name, format, sum)}
			return nil
		},
	})
}

// exportStatus summarises an export as `vlab export` does, on one line.
func exportStatus(name, format string, sum ExportSummary) string {
	disks := "1 disk"
	if sum.Disks != 1 {
		disks = fmt.Sprintf("%d disks", sum.Disks)
	}
	s := fmt.Sprintf("exported %s to %s (%s, %s)", name, sum.Path, format, disks)
	if len(sum.Notes) > 0 {
		label := "note: "
		if format == FormatLibvirt {
			label = "not carried: "
		}
		s += "; " + label + shortList(sum.Notes, "; ", 2)
	}
	return s
}

// shortList joins the first max items of list and counts the rest.
func shortList(list []string, sep string, max int) string {
	if len(list) <= max {
		return strings.Join(list, sep)
	}
	return strings.Join(list[:max], sep) + fmt.Sprintf(" (+%d more)", len(list)-max)
}

// importPrompt asks for an OVA or OVF package and imports it as a job;
// the first new machine is selected.
func (m *Model) importPrompt() *promptDialog {
	svc, ctx, home := m.svc, m.ctx, m.home()
	validate := func(s string) error {
		if s == "" {
			return errors.New("give the path of an .ova archive or an .ovf descriptor")
		}
		return nil
	}
	return pathPrompt(newPrompt("Import an OVA or OVF package", "path of FILE.ova or FILE.ovf", "", validate, func(s string) tea.Cmd {
		path := absPath(expandHome(s, home))
		var sum ImportSummary
		return m.startJob(jobSpec{
			title: "importing " + path, op: "import",
			run: func(p ProgressFunc) error {
				var err error
				sum, err = svc.Import(ctx, path, p)
				return err
			},
			then: func(m *Model) tea.Cmd {
				m.status = status{text: importStatus(sum)}
				if len(sum.Names) == 0 {
					return nil
				}
				m.selectNew = sum.Names[0]
				var cmds []tea.Cmd
				for _, n := range sum.Names {
					cmds = append(cmds, m.getVM(n))
				}
				return tea.Batch(cmds...)
			},
		})
	}))
}

// importStatus summarises an import as `vlab import` does, on one line.
func importStatus(sum ImportSummary) string {
	if len(sum.Names) == 0 {
		return "imported nothing"
	}
	s := "imported " + shortList(sum.Names, ", ", 3)
	if len(sum.Dropped) > 0 {
		s += " (dropped: " + shortList(sum.Dropped, ", ", 3) + ")"
	}
	if len(sum.Notes) > 0 {
		s += "; note: " + shortList(sum.Notes, "; ", 1)
	}
	return s
}
