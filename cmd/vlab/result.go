package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"vlab/machine"
)

// jsonVersion is the "version" field of every JSON object vlab prints
// (docs/json.md). It changes only when a key is removed or changes meaning;
// new keys may appear without a new version.
const jsonVersion = 1

// jsonFlag registers --json on cmd, bound to the app's one switch.
func (a *app) jsonFlag(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVar(&a.json, "json", false, what)
}

// printResult prints v, which must marshal to a JSON object, as one indented
// JSON object whose first key is "version".
func printResult(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) < 2 || b[0] != '{' {
		return fmt.Errorf("print json: %T is not an object", v)
	}
	head := fmt.Sprintf(`{"version":%d`, jsonVersion)
	if len(b) > 2 {
		head += ","
	}
	var out bytes.Buffer
	if err := json.Indent(&out, append([]byte(head), b[1:]...), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// vmResult is what a command that changed a VM prints with --json: the VM
// as `vlab show --json` prints it, with what was done.
type vmResult struct {
	showJSON
	Action string `json:"action"`        // created, updated, started, stopped, paused, ...
	How    string `json:"how,omitempty"` // how it was done, e.g. how a stop ended
}

// printVM prints VM name after action: the show object with --json, else
// nothing (the caller prints its own line).
func (a *app) printVM(cmd *cobra.Command, s *machine.Store, name, action, how string) error {
	v, _, err := buildShow(cmd, s, name)
	if err != nil {
		return err
	}
	return printResult(cmd.OutOrStdout(), vmResult{showJSON: v, Action: action, How: how})
}

// goneResult is what delete and remove commands print with --json.
type goneResult struct {
	Action string `json:"action"` // deleted, removed
	Kind   string `json:"kind"`   // vm, iso, lab
	Name   string `json:"name"`
}

// snapshotResult is a snapshot command's --json: the snapshot as `vlab
// snapshot list --json` prints it, with its VM and what was done.
type snapshotResult struct {
	Action string `json:"action"` // created, restored, deleted
	VM     string `json:"vm"`
	State  string `json:"state"` // the VM's state afterwards
	machine.Snapshot
}

// diskResult is a disk command's --json: the disk as `vlab show --json`
// prints it, with its VM and what was done.
type diskResult struct {
	Action      string     `json:"action"` // added, removed, resized, imported, converted
	VM          string     `json:"vm"`
	Disk        diskJSON   `json:"disk"`
	FileDeleted bool       `json:"file_deleted"` // rm --delete-file
	Disks       []diskJSON `json:"disks"`        // all the VM's disks afterwards
}

func diskEntry(p machine.Paths, d machine.DiskSpec) diskJSON {
	format := d.Format
	if format == "" {
		format = "qcow2"
	}
	return diskJSON{File: d.File, Path: p.DiskPath(d.File), Size: d.Size.String(), Format: format}
}

// printDisk prints a disk command's result (--json).
func printDisk(cmd *cobra.Command, s *machine.Store, name, action string, d machine.DiskSpec, deleted bool) error {
	spec, err := s.Load(name)
	if err != nil {
		return err
	}
	p := s.Paths(name)
	r := diskResult{Action: action, VM: name, Disk: diskEntry(p, d), FileDeleted: deleted, Disks: []diskJSON{}}
	for _, d := range spec.Disks {
		r.Disks = append(r.Disks, diskEntry(p, d))
	}
	return printResult(cmd.OutOrStdout(), r)
}

// forwardResult is a `net forward` command's --json.
type forwardResult struct {
	Action string `json:"action"` // added, removed
	VM     string `json:"vm"`
	machine.ForwardInfo
}

// labResult is a `net lab` command's --json.
type labResult struct {
	Action string `json:"action"` // created
	machine.Lab
}

// isoResult is an `iso add/get` command's --json.
type isoResult struct {
	Action string `json:"action"` // added, downloaded
	machine.ISO
}
