package portable

import (
	"context"
	"fmt"
	"strings"

	"vlab/internal/lazyre"
	"vlab/machine"
)

// ImportOptions tune Import.
type ImportOptions struct {
	Name     string // the new VM's name; "" = the system's name, made a vlab name
	VSys     string // the system of a multi-VM package (id or name); "all" = every one
	Progress machine.ProgressFunc
}

// Imported is one VM an import created.
type Imported struct {
	Name    string
	System  string // the system's id in the package
	Spec    *machine.Spec
	Dropped []string
}

// ImportResult is what Import did.
type ImportResult struct {
	VMs      []Imported
	Manifest string   // the verified manifest ("" = none)
	Notes    []string // about the package (no manifest, certificates)
}

// Import creates VMs from the OVA or OVF at path. The package is verified
// (Open) before anything is created; each VM appears whole or not at all.
func Import(ctx context.Context, s *machine.Store, path string, opts ImportOptions) (*ImportResult, error) {
	// The disks are converted while the manifest is verified, each
	// reading the package once; no VM is put in place before both end
	// (CreateImported's check), and a mismatch stops the conversion.
	pkg, err := OpenUnverified(path)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var verr error
	done := make(chan struct{})
	go func() {
		verr = pkg.Verify()
		close(done)
		if verr != nil {
			cancel() // done is closed first: a failed conversion sees why
		}
	}()
	check := func() error { <-done; return verr }
	systems, err := pick(pkg.Env.AllSystems(), opts.VSys)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	if opts.Name != "" && len(systems) > 1 {
		return nil, fmt.Errorf("import %s: --name names one VM, but %d systems are imported: drop --name", path, len(systems))
	}
	res := &ImportResult{Manifest: pkg.Manifest, Notes: pkg.Notes}
	var mapped []*Mapped
	for _, sys := range systems {
		name := opts.Name
		if name == "" {
			name = vmName(sys.Title())
		}
		if err := machine.ValidateName(name); err != nil {
			return nil, fmt.Errorf("import %s: %w: give one with --name", path, err)
		}
		m, err := Map(pkg, sys, name)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", path, err)
		}
		mapped = append(mapped, m)
	}
	for i, m := range mapped {
		if err := s.CreateImported(ctx, m.Spec, m.Sources, opts.Progress, check); err != nil {
			select {
			case <-done:
				if verr != nil {
					return nil, fmt.Errorf("import: %w", verr)
				}
			default:
			}
			return res, err
		}
		res.VMs = append(res.VMs, Imported{Name: m.Spec.Name, System: systems[i].ID, Spec: m.Spec, Dropped: m.Dropped})
	}
	return res, nil
}

// pick chooses the systems to import: the only one, the one named by vsys
// (id or name), or all for "all".
func pick(all []VirtualSystem, vsys string) ([]VirtualSystem, error) {
	if vsys == "all" {
		return all, nil
	}
	if vsys == "" {
		if len(all) == 1 {
			return all, nil
		}
		return nil, fmt.Errorf("package holds %d systems (%s): choose one with --vsys NAME, or --vsys all", len(all), strings.Join(titles(all), ", "))
	}
	for _, v := range all {
		if v.ID == vsys || v.Name == vsys {
			return []VirtualSystem{v}, nil
		}
	}
	return nil, fmt.Errorf("package has no system %q: it holds %s", printable(vsys), strings.Join(titles(all), ", "))
}

// titles names the systems for a message.
func titles(all []VirtualSystem) []string {
	var out []string
	for _, v := range all {
		out = append(out, printable(v.Title()))
	}
	return out
}

var badNameChars = lazyre.New(`[^A-Za-z0-9._-]+`)

// vmName turns a system's name into a vlab VM name.
func vmName(title string) string {
	n := strings.Trim(badNameChars().ReplaceAllString(title, "-"), "-._")
	if len(n) > machine.MaxNameLen {
		n = n[:machine.MaxNameLen]
	}
	return n
}
