package machine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// BridgeACL is the access list qemu-bridge-helper reads (compiled into the
// helper; Debian's path).
var BridgeACL = "/etc/qemu/bridge.conf"

// bridgeHelpers are where distributions install qemu-bridge-helper.
var bridgeHelpers = []string{
	"/usr/lib/qemu/qemu-bridge-helper",      // Debian, Ubuntu
	"/usr/libexec/qemu-bridge-helper",       // Fedora, Arch, openSUSE
	"/usr/local/libexec/qemu-bridge-helper", // built from source
}

// findBridgeHelper returns the path of qemu-bridge-helper and its file
// info, or "" and nil.
func findBridgeHelper() (string, fs.FileInfo) {
	for _, p := range bridgeHelpers {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, fi
		}
	}
	return "", nil
}

// BridgeCheck is what bridged networking through qemu-bridge-helper needs
// from this host, checked for one bridge.
type BridgeCheck struct {
	Bridge       string
	Helper       string // path of qemu-bridge-helper, "" when missing
	Setuid       bool   // the helper is setuid root
	CapNetAdmin  bool   // the helper has cap_net_admin (file capability)
	Root         bool   // vlab runs as root: the helper needs neither
	ACL          string // the access list path
	ACLErr       string // why the list could not be read, "" when it was
	Allowed      bool   // the list allows Bridge
	BridgeExists bool   // the bridge interface exists
	Problems     []string
	Fixes        []string // shell commands that fix the problems, in order
}

// CheckBridge checks that qemu-bridge-helper exists, may create taps (setuid
// root or cap_net_admin, unless vlab runs as root), that its access list
// allows bridge, and that the bridge exists. Problems and the commands that
// fix them are listed in the result.
func CheckBridge(bridge string) BridgeCheck {
	c := checkBridgeHelper()
	c.Bridge = bridge
	switch {
	case c.Helper == "":
		c.Problems = append(c.Problems, "qemu-bridge-helper is not installed")
		c.Fixes = append(c.Fixes, "sudo apt-get install qemu-system-common")
	case !c.helperMayCreateTaps():
		c.Problems = append(c.Problems, c.Helper+" is neither setuid root nor has cap_net_admin")
		c.Fixes = append(c.Fixes, "sudo chmod u+s "+c.Helper)
	}
	allowed, err := bridgeAllowed(c.ACL, bridge, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.ACLErr = "missing"
	case errors.Is(err, fs.ErrPermission):
		c.ACLErr = "not readable by vlab"
	case err != nil:
		c.ACLErr = err.Error()
	}
	c.Allowed = allowed
	switch {
	case c.ACLErr == "not readable by vlab":
		// The helper (root) reads it; vlab cannot tell. QEMU says if it denies.
	case c.ACLErr != "":
		c.Problems = append(c.Problems, fmt.Sprintf("%s is %s, so the helper allows no bridge", c.ACL, c.ACLErr))
		c.Fixes = append(c.Fixes, aclFix(c.ACL, bridge))
	case !allowed:
		c.Problems = append(c.Problems, fmt.Sprintf("%s does not allow bridge %s", c.ACL, bridge))
		c.Fixes = append(c.Fixes, aclFix(c.ACL, bridge))
	}
	if _, err := os.Stat("/sys/class/net/" + bridge + "/bridge"); err == nil {
		c.BridgeExists = true
	} else if _, err := os.Stat("/sys/class/net/" + bridge); err == nil {
		c.Problems = append(c.Problems, "interface "+bridge+" is not a bridge")
		c.Fixes = append(c.Fixes, "pick a bridge from `ip -br link show type bridge`")
	} else {
		c.Problems = append(c.Problems, "bridge "+bridge+" does not exist")
		c.Fixes = append(c.Fixes, "sudo ip link add "+bridge+" type bridge && sudo ip link set "+bridge+" up")
	}
	return c
}

// checkBridgeHelper fills in the helper half of a BridgeCheck: where
// qemu-bridge-helper is and what lets it create taps.
func checkBridgeHelper() BridgeCheck {
	c := BridgeCheck{ACL: BridgeACL, Root: os.Geteuid() == 0}
	helper, fi := findBridgeHelper()
	if helper == "" {
		return c
	}
	c.Helper = helper
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		c.Setuid = fi.Mode()&os.ModeSetuid != 0 && st.Uid == 0
	}
	c.CapNetAdmin = hasCapNetAdmin(helper)
	return c
}

// helperMayCreateTaps reports whether the helper can create taps for vlab:
// setuid root, cap_net_admin, or vlab itself runs as root.
func (c BridgeCheck) helperMayCreateTaps() bool { return c.Setuid || c.CapNetAdmin || c.Root }

// BridgeHelperStatus sums up bridged networking for `vlab doctor`: whether
// qemu-bridge-helper can create taps for vlab's user, which bridges its
// access list allows, and the commands that fix what is missing.
func BridgeHelperStatus() (ok bool, info, fix string) {
	c := checkBridgeHelper()
	var fixes []string
	switch {
	case c.Helper == "":
		return false, "qemu-bridge-helper missing (bridged nics cannot work)", "sudo apt-get install qemu-system-common"
	case c.Setuid:
		info = c.Helper + " (setuid root)"
	case c.CapNetAdmin:
		info = c.Helper + " (cap_net_admin)"
	case c.Root:
		info = c.Helper + " (not setuid; fine while vlab runs as root)"
	default:
		info = c.Helper + " is neither setuid root nor has cap_net_admin"
		fixes = append(fixes, "sudo chmod u+s "+c.Helper)
	}
	rules, err := aclRules(c.ACL, 0)
	switch {
	case err == nil:
		var allowed []string
		for _, r := range rules {
			if r[0] == "allow" {
				allowed = append(allowed, r[1])
			}
		}
		if len(allowed) == 0 {
			info += "; " + c.ACL + " allows no bridge"
			fixes = append(fixes, aclFix(c.ACL, "br0"))
		} else {
			info += "; " + c.ACL + " allows " + strings.Join(allowed, ", ")
		}
	case errors.Is(err, fs.ErrPermission):
		info += "; " + c.ACL + " is not readable by vlab (the helper reads it as root)"
	case errors.Is(err, fs.ErrNotExist):
		info += "; " + c.ACL + " is missing, so the helper allows no bridge"
		fixes = append(fixes, aclFix(c.ACL, "br0"))
	default:
		info += "; " + c.ACL + ": " + err.Error()
	}
	return len(fixes) == 0, info, strings.Join(fixes, " && ")
}

func aclFix(acl, bridge string) string {
	dir := acl[:strings.LastIndex(acl, "/")+1]
	return fmt.Sprintf("sudo mkdir -p %s && echo 'allow %s' | sudo tee -a %s && sudo chmod 0644 %s", strings.TrimSuffix(dir, "/"), bridge, acl, acl)
}

// OK reports whether nothing stands in the way.
func (c BridgeCheck) OK() bool { return len(c.Problems) == 0 }

// Err returns nil when c is OK, else one line naming the problems and the
// exact commands that fix them.
func (c BridgeCheck) Err() error {
	if c.OK() {
		return nil
	}
	return fmt.Errorf("bridge %s: %s: fix: %s", c.Bridge, strings.Join(c.Problems, "; "), strings.Join(c.Fixes, " && "))
}

// bridgeAllowed evaluates qemu-bridge-helper's access list for bridge the
// way the helper does: allowed when an allow line matches it (or "allow
// all") and no deny line does; "include FILE" reads FILE in place.
func bridgeAllowed(path, bridge string, depth int) (bool, error) {
	rules, err := aclRules(path, depth)
	if err != nil {
		return false, err
	}
	allow, deny := false, false
	for _, r := range rules {
		match := r[1] == "all" || r[1] == bridge
		switch r[0] {
		case "allow":
			allow = allow || match
		case "deny":
			deny = deny || match
		}
	}
	return allow && !deny, nil
}

// aclRules reads the allow and deny lines of an access list, with its
// includes expanded.
func aclRules(path string, depth int) ([][2]string, error) {
	if depth > 8 {
		return nil, fmt.Errorf("%s: includes nest too deep", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rules [][2]string
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "allow", "deny":
			rules = append(rules, [2]string{f[0], f[1]})
		case "include":
			sub, err := aclRules(f[1], depth+1)
			if err != nil {
				return nil, err
			}
			rules = append(rules, sub...)
		}
	}
	return rules, nil
}

// capNetAdmin is CAP_NET_ADMIN's bit number.
const capNetAdmin = 12

// hasCapNetAdmin reads the file capabilities of path (the security.capability
// extended attribute) and reports whether cap_net_admin is permitted and
// effective.
func hasCapNetAdmin(path string) bool {
	buf := make([]byte, 64)
	n, err := syscall.Getxattr(path, "security.capability", buf)
	if err != nil {
		return false
	}
	return capsHaveNetAdmin(buf[:n])
}

// capsHaveNetAdmin decodes a vfs_cap_data value: a little-endian magic
// word whose low bit is the effective flag, then permitted/inheritable
// words (low 32 capabilities first).
func capsHaveNetAdmin(b []byte) bool {
	if len(b) < 12 {
		return false
	}
	effective := binary.LittleEndian.Uint32(b[0:])&1 != 0
	permitted := binary.LittleEndian.Uint32(b[4:])
	return effective && permitted&(1<<capNetAdmin) != 0
}

// CheckTap checks that a pre-created tap interface exists and that vlab's
// user may open it; the error names the command that creates it.
func CheckTap(tap string) error {
	fix := fmt.Sprintf("sudo ip tuntap add dev %s mode tap user %s && sudo ip link set %s up", tap, currentUser(), tap)
	dir := "/sys/class/net/" + tap
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("tap %s does not exist: fix: %s", tap, fix)
	}
	if _, err := os.Stat(dir + "/tun_flags"); err != nil {
		return fmt.Errorf("interface %s is not a tap device: fix: %s (with another name)", tap, fix)
	}
	if os.Geteuid() == 0 {
		return nil
	}
	owner := readSysInt(dir + "/owner")
	if owner >= 0 && owner != os.Geteuid() {
		return fmt.Errorf("tap %s belongs to uid %d, not you: fix: sudo ip tuntap del dev %s mode tap && %s", tap, owner, tap, fix)
	}
	if owner < 0 {
		group := readSysInt(dir + "/group")
		if group < 0 || !inGroup(group) {
			return fmt.Errorf("tap %s has no owner, so only root may use it: fix: sudo ip tuntap del dev %s mode tap && %s", tap, tap, fix)
		}
	}
	return nil
}

func readSysInt(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return -1
	}
	return v
}

func inGroup(gid int) bool {
	if os.Getegid() == gid {
		return true
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if g == gid {
			return true
		}
	}
	return false
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Getuid())
}
