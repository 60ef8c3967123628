package main

import (
	"errors"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// errGDBPort answers `--gdb PORT`, the form vlab had before the gdb stub
// became a private unix socket.
var errGDBPort = errors.New("--gdb takes no port: the gdb stub is now a unix socket only you can open; use --gdb and attach with gdb -ex 'target remote SOCKET', SOCKET from `vlab show NAME` (gdb_socket in --json)")

// gdbFlag is --gdb: a bool (--gdb, --gdb=false) that explains a port number.
type gdbFlag struct{ on *bool }

func (g gdbFlag) String() string { return strconv.FormatBool(g.on != nil && *g.on) }
func (g gdbFlag) Type() string   { return "bool" }

func (g gdbFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		if _, nerr := strconv.Atoi(s); nerr == nil {
			return errGDBPort
		}
		return errors.New("use --gdb or --gdb=false")
	}
	*g.on = v
	return nil
}

// registerGDB adds --gdb to f.
func registerGDB(f *pflag.FlagSet, on *bool) {
	fl := f.VarPF(gdbFlag{on}, "gdb", "", "open a gdb stub on a unix socket in the vm's private runtime dir (--gdb=false: none); vlab show names it")
	fl.NoOptDefVal = "true"
}

// gdbPortArgs refuses `--gdb 1234` (a bool flag leaves the port as an extra
// argument) with the same explanation as --gdb=1234, then checks args with
// next.
func gdbPortArgs(next cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if cmd.Flags().Changed("gdb") && len(args) > 1 {
			for _, a := range args[1:] {
				if _, err := strconv.Atoi(a); err == nil {
					return usageError{errGDBPort}
				}
			}
		}
		return next(cmd, args)
	}
}
