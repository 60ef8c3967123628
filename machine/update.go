package machine

import (
	"context"
	"fmt"
	"os"
)

// Update changes VM name's definition: it takes the VM lock, loads
// machine.toml, lets change edit the Spec, validates it and writes it back
// atomically, all under the one lock. Two vlab processes changing one VM
// (`vlab edit` and `vlab disk add`, a TUI form and `vlab net forward add`)
// therefore both land: the second reads what the first wrote. Nothing is
// written when change returns an error, which Update returns as is.
//
// change runs with the lock held: it may ask Status and talk QMP, but must
// not call another Store method that takes the VM lock (Save, Start, the
// Disk* and CD-ROM methods): that would wait for itself until ctx ends.
func (s *Store) Update(ctx context.Context, name string, change func(*Spec) error) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	p := s.Paths(name)
	if _, err := os.Stat(p.Spec); err != nil {
		return fmt.Errorf("vm %q: %w: see `vlab list` for the vms you have", name, ErrNotFound)
	}
	l, err := lock(ctx, p.Lock)
	if err != nil {
		return fmt.Errorf("update vm %q: %w", name, err)
	}
	defer l.unlock()
	spec, err := s.Load(name)
	if err != nil {
		return err
	}
	if err := change(spec); err != nil {
		return err
	}
	if spec.Name != name {
		return fmt.Errorf("update vm %q: the definition may not rename the vm (to %q): use `vlab clone`", name, spec.Name)
	}
	// The one validator with what the installed QEMU knows (validate.go),
	// as Save and Create run it: an edit cannot store what start refuses.
	host, err := s.Host(ctx)
	if err != nil {
		return fmt.Errorf("update vm %q: %w", name, err)
	}
	if err := spec.ValidateFor(host); err != nil {
		return fmt.Errorf("update vm %q: %s", name, oneLine(err.Error()))
	}
	return s.saveSpecLocked(spec)
}
