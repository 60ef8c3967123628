package machine

// migrateGDBPort turns the gdb_port = N of a machine.toml written before the
// gdb stub became a private unix socket into gdb = true. A TCP stub let any
// local user, and a user-mode guest through 10.0.2.2, reach QEMU's human
// monitor (and through it run host commands) with gdb's `monitor`, so vlab
// no longer opens one; the next save writes gdb = true.
func migrateGDBPort(spec *Spec) {
	if spec.GDBPort != 0 {
		spec.GDB, spec.GDBPort = true, 0
	}
}
