// Package lazyre holds regular expressions that are compiled on first use
// instead of at package initialisation: every vlab command, `vlab start`
// above all (its start-up is budgeted), would otherwise compile all of the
// program's patterns before main runs, though it uses one or two of them.
package lazyre

import (
	"regexp"
	"sync"
)

// New returns a function that compiles expr the first time it is called
// and returns the same *regexp.Regexp from then on. expr must be valid, as
// for regexp.MustCompile (it panics on the first call otherwise).
func New(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
