package tui

import (
	"errors"
	"strings"
)

// checkNewVM checks a machine the wizard describes with the validator
// `vlab create` and the store use (machine.Spec.Validate), so the wizard
// shows the same one-line error for the same input before anything is
// created. It does no I/O.
func checkNewVM(n NewVM) error {
	if _, err := newSpec(n); err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return nil
}
