package emulator

import "testing"

// TestHMPStrings pins every HMP command line emulator produces, byte for
// byte: QEMU parses them, so a changed space or colon breaks forwards.
func TestHMPStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{HMPInfoUsernet, "info usernet"},
		{HostfwdRule("tcp", "127.0.0.1", 0, 22), "tcp:127.0.0.1:0-:22"},
		{HostfwdRule("udp", "", 5353, 53), "udp::5353-:53"},
		{HMPHostfwdAdd("net0", HostfwdRule("tcp", "127.0.0.1", 2222, 22)), "hostfwd_add net0 tcp:127.0.0.1:2222-:22"},
		{HMPHostfwdRemove("net1", "tcp", "127.0.0.1", 40123), "hostfwd_remove net1 tcp:127.0.0.1:40123"},
		{HMPHostfwdRemove("net0", "udp", "", 5353), "hostfwd_remove net0 udp::5353"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
