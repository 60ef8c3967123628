package emulator

import "strings"

// optValue escapes v for use as a value inside a QEMU option string
// ("key=value,key=value"): QEMU's QemuOpts and keyval parsers end a value at
// a single comma and read ",," as one literal comma. Options QEMU takes as a
// whole argument (-kernel, -initrd, -append, -dtb, -pidfile) must NOT go
// through this: QEMU does not unescape those.
func optValue(v string) string { return strings.ReplaceAll(v, ",", ",,") }

// ShellQuote joins argv into one line a POSIX shell splits back into exactly
// the same argv: words made only of safe characters stay bare, anything else
// is single-quoted (a ' inside becomes '\”). A first word containing = is
// quoted too, so the shell does not read it as a variable assignment.
func ShellQuote(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		if i == 0 && strings.Contains(a, "=") {
			b.WriteString(singleQuote(a))
			continue
		}
		b.WriteString(shellWord(a))
	}
	return b.String()
}

func shellWord(s string) string {
	if s == "" {
		return "''"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !shellSafe(r) }) < 0 {
		return s
	}
	return singleQuote(s)
}

func singleQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellSafe reports characters that never need quoting in a POSIX shell word
// (none of them is special anywhere in a word, nor expands).
func shellSafe(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("_-+=:,./@%", r)
}

// UnixDgramNetdev returns the options of a dgram netdev between two unix
// sockets (NIC.Socket for mode NetSocket), the socket paths escaped as
// option values: a lab network port.
func UnixDgramNetdev(local, remote string) []string {
	return []string{"dgram",
		"local.type=unix", "local.path=" + optValue(local),
		"remote.type=unix", "remote.path=" + optValue(remote)}
}
