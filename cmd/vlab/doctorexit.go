package main

import "fmt"

// doctorFindings is `vlab doctor`'s exit status: an error (exit 1) when a
// check failed and names a fix the user can run, nil (exit 0) when there is
// nothing to fix. A gap with no fix (e.g. a /dev/kvm without vmx/svm, where
// vlab falls back to TCG by design) is information, not a finding.
func doctorFindings(checks []check) error {
	n := 0
	for _, c := range checks {
		if !c.OK && c.Fix != "" {
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
