package machine

// This file is owned by the TUI (package tui's machinesvc.go uses it): small
// read-only helpers the screens need that the rest of the API has no cheap
// form of. They use only this package's documented helpers.

// SnapshotCount returns how many snapshots VM name has on record, from its
// snapshot metadata alone: no qemu-img call and no lock, so the TUI can show
// the count for every VM of a large library on each refresh. It may lag an
// operation another vlab is running; Snapshots gives the reconciled tree.
func (s *Store) SnapshotCount(name string) int {
	m, err := readMeta(s.Paths(name))
	if err != nil {
		return 0
	}
	return len(m.Snapshots)
}
