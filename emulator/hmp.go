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
