package main

import (
	"fmt"

	"vlab/machine"
)

// doctorFindings is `vlab doctor`'s exit status: an error (exit 1) when a
// check is a finding (it failed and names a fix the user can run), nil
// (exit 0) when there is nothing to fix.
func doctorFindings(checks []machine.Check) error {
	n := 0
	for _, c := range checks {
		if c.Finding() {
			n++
		}
	}
	switch n {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("doctor: 1 finding: run the fix it names")
	}
	return fmt.Errorf("doctor: %d findings: run the fixes they name", n)
}
