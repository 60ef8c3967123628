package emulator

import "fmt"

// HMP command lines vlab sends through QMP's human-monitor-command. They live
// here with the rest of QEMU's wire syntax; machine only says what it wants.

// HMPInfoUsernet lists the sockets of every user-mode netdev, forwards
// included.
const HMPInfoUsernet = "info usernet"

// HostfwdRule is a user-mode forward in hostfwd_add's syntax:
// PROTO:HOSTADDR:HOSTPORT-:GUESTPORT (the guest address left to slirp: its
// first DHCP lease). Host port 0 lets the kernel pick a free port.
func HostfwdRule(proto, hostAddr string, hostPort, guestPort int) string {
	return fmt.Sprintf("%s:%s:%d-:%d", proto, hostAddr, hostPort, guestPort)
}

// HMPHostfwdAdd binds rule (see HostfwdRule) on user-mode netdev id.
func HMPHostfwdAdd(netdev, rule string) string {
	return "hostfwd_add " + netdev + " " + rule
}

// HMPHostfwdRemove releases the forward bound to proto hostAddr:hostPort on
// user-mode netdev id.
func HMPHostfwdRemove(netdev, proto, hostAddr string, hostPort int) string {
	return fmt.Sprintf("hostfwd_remove %s %s:%s:%d", netdev, proto, hostAddr, hostPort)
}

// HMPCommands are the human monitor's command names that `vlab monitor` and
// the TUI's monitor view complete with Tab: QEMU 7.2's `help`, the ones
// students use most first. This is the one list; a command missing from it
// still runs, it is only not completed.
var HMPCommands = []string{
	"info", "help", "stop", "cont", "c", "system_reset", "system_powerdown", "x", "xp", "p", "print",
	"gdbserver", "log", "logfile", "trace-event", "singlestep", "sendkey", "screendump", "memsave",
	"pmemsave", "savevm", "loadvm", "delvm", "mouse_move", "mouse_button", "nmi", "i", "o",
	"device_add", "device_del", "qom-list", "qom-get", "qom-set", "replay_break", "replay_delete_break",
	"replay_seek", "announce_self", "dump-guest-memory", "watchdog_action", "sum", "boot_set",
	"commit", "eject", "change", "block_resize", "drive_del", "drive_add", "netdev_add", "netdev_del",
	"set_link", "stopcapture", "wavcapture", "mce", "cpu", "balloon", "snapshot_blkdev", "migrate",
}

// HMPInfoTopics are the `info` topics completed after "info ", the ones
// students use most first.
var HMPInfoTopics = []string{"status", "registers", "mtree", "pci", "irq", "tlb", "cpus", "block", "network",
	"qtree", "mem", "pic", "lapic", "roms", "chardev", "trace-events", "replay", "snapshots", "version",
	"history", "jit", "kvm", "numa", "usb", "usernet", "vnc", "qom-tree", "memdev", "ramblock", "sync-profile"}
