package portable

import "strings"

// cimOS names the CIM_OperatingSystem OSType values (OperatingSystemSection
// ovf:id) that say which OS a package holds.
var cimOS = map[int]string{
	14: "msdos", 15: "win3x", 16: "win95", 17: "win98", 18: "winnt",
	36: "linux", 42: "freebsd", 58: "win2000", 63: "winme", 65: "openbsd",
	67: "winxp", 69: "winnet2003", 70: "winnet2003_64", 71: "winxp_64",
	73: "winvista", 74: "winvista_64", 76: "winserver2008", 77: "winserver2008_64",
	78: "freebsd_64", 79: "rhel", 80: "rhel_64", 82: "suse", 83: "suse_64",
	93: "ubuntu", 94: "ubuntu_64", 95: "debian", 96: "debian_64",
	97: "linux24", 98: "linux24_64", 99: "linux26", 100: "linux26_64",
	101: "linux_64", 103: "winserver2008r2", 105: "windows7", 106: "centos", 107: "centos_64",
}

// osRules map a lower-case OS name (VirtualBox's OSType, VMware's osType,
// a CIM name) to a vlab profile, the most specific first.
var osRules = []struct{ has, profile string }{
	{"windows11", "win11"}, {"win11", "win11"},
	{"windows98", "win98"}, {"win98", "win98"}, {"winme", "win98"},
	{"windows95", "win95"}, {"win95", "win95"},
	{"windows2000", "win2000"}, {"win2000", "win2000"}, {"winnt", "win2000"},
	{"windowsxp", "winxp"}, {"winxp", "winxp"}, {"winnet", "winxp"}, {"windows2003", "winxp"},
	{"windows10", "win10"}, {"windows9", "win10"}, {"windows8", "win10"}, {"windows7", "win10"},
	{"winvista", "win10"}, {"windowsvista", "win10"}, {"winserver", "win10"}, {"windows20", "win10"},
	{"freedos", "freedos"}, {"msdos", "msdos622"}, {"dos", "msdos622"},
	{"debian", "debian"}, {"ubuntu", "ubuntu"}, {"fedora", "fedora"}, {"archlinux", "archlinux"},
	{"alpine", "alpine"}, {"freebsd", "freebsd"}, {"openbsd", "openbsd"}, {"haiku", "haiku"},
	{"reactos", "reactos"},
}

// profileFor picks the vlab profile for a package's OS section: the
// vendors' own names first (they are the most precise), then the CIM id,
// then the description. An unknown or generic OS gets the generic Linux
// profile for its firmware.
func profileFor(os *OSSection, efi bool) string {
	var names []string
	if os != nil {
		names = append(names, os.VBoxOSType, os.OSType, cimOS[os.ID], os.Description)
	}
	for _, n := range names {
		n = strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(n, " ", ""), "-", ""))
		if n == "" {
			continue
		}
		for _, r := range osRules {
			if strings.Contains(n, r.has) {
				return r.profile
			}
		}
	}
	if efi {
		return "linux-uefi"
	}
	return "linux-bios"
}
