package tui

import (
	"context"
	"errors"

	"vlab/emulator"
	"vlab/tui/service"
)

// The Service and its values live in package service (so that the fake in
// package tuifake, which tests and bench/tui use, need not import tui);
// these aliases keep their short names here.
type (
	Service      = service.Service
	State        = service.State
	VM           = service.VM
	NIC          = service.NIC
	PortForward  = service.PortForward
	DiskInfo     = service.DiskInfo
	Stats        = service.Stats
	NewVM        = service.NewVM
	Settings     = service.Settings
	Snapshot     = service.Snapshot
	Serial       = service.Serial
	HostLimits   = service.HostLimits
	Profile      = service.Profile
	Progress     = service.Progress
	ProgressFunc = service.ProgressFunc
	Fixer        = service.Fixer
	Change       = service.Change

	GalleryEntry = service.GalleryEntry
	Share        = service.Share
	ShareView    = service.ShareView
	CopyRequest  = service.CopyRequest

	ExportSummary = service.ExportSummary
	ImportSummary = service.ImportSummary
)

// States (see service.State).
const (
	StateStopped  = service.StateStopped
	StateStarting = service.StateStarting
	StateRunning  = service.StateRunning
	StatePaused   = service.StatePaused
	StateStopping = service.StateStopping
	StateCrashed  = service.StateCrashed
	StateError    = service.StateError
	StateInvalid  = service.StateInvalid
)

// Kinds of gallery entries (see Service.Gallery).
const (
	KindISO   = service.KindISO
	KindCloud = service.KindCloud
)

// Export formats (see Service.Export).
const (
	FormatOVA     = service.FormatOVA
	FormatOVF     = service.FormatOVF
	FormatLibvirt = service.FormatLibvirt
)

// Errors and helpers of package service.
var (
	ErrNotSupported = service.ErrNotSupported
	ErrNoMachine    = service.ErrNoMachine
	WithFix         = service.WithFix
	SettingsOf      = service.SettingsOf
	DefaultProfiles = service.DefaultProfiles
)

func portForwards(rules []emulator.Forward) []PortForward { return service.PortForwards(rules) }

func forwardRules(fw []PortForward) []emulator.Forward { return service.ForwardRules(fw) }

// fixOf finds the one-line fix for err, "" when there is none.
func fixOf(err error) string {
	var f Fixer
	if errors.As(err, &f) {
		return f.Fix()
	}
	switch {
	case errors.Is(err, ErrNotSupported):
		return "this build cannot do that yet"
	case errors.Is(err, context.DeadlineExceeded):
		return "the operation timed out; check qemu.log (l)"
	}
	return ""
}
