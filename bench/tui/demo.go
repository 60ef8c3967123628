package main

import (
	"context"
	"fmt"
	"time"

	"vlab/emulator"
	"vlab/tui"
	"vlab/tui/tuifake"
)

// demoLibrary is a small library with one machine in each interesting
// state, for the screenshot.
func demoLibrary() jitterService {
	f := tuifake.New()
	reason := "TCG: /dev/kvm opens but the CPU has no vmx/svm"
	disk := func(name string, gib, usedMiB int64) []tui.DiskInfo {
		return []tui.DiskInfo{{
			Disk:         emulator.Disk{Path: "/home/ada/.local/share/vlab/machines/" + name + "/disk0.qcow2", Format: "qcow2", Bus: "virtio", NodeName: "hd0"},
			VirtualBytes: gib << 30, ActualBytes: usedMiB << 20,
		}}
	}
	nic := func(mac string, fw ...emulator.Forward) []tui.NIC {
		n := tui.NIC{ID: "net0", Kind: emulator.NetUser, Mode: "user", Model: "virtio-net-pci", MAC: mac}
		for _, f := range fw {
			n.Forwards = append(n.Forwards, tui.PortForward{Rule: f, BoundPort: f.HostPort})
		}
		return []tui.NIC{n}
	}
	run := func(vm tui.VM, cpu float64, up time.Duration) tui.VM {
		dir := "/run/user/1000/vlab/" + vm.Name
		vm.State, vm.CPUPercent, vm.Uptime = tui.StateRunning, cpu, up
		vm.VNC, vm.Serial, vm.QMP = dir+"/vnc.sock", dir+"/serial.sock", dir+"/qmp0.sock"
		return vm
	}
	vms := []tui.VM{
		run(tui.VM{Name: "debian-12", Profile: "debian-12", OS: "Debian 12", Arch: emulator.ArchX86_64, Accel: emulator.AccelTCG, AccelReason: reason,
			CPUs: 2, MemoryMiB: 2048, Disks: disk("debian-12", 20, 3180), ISO: "/home/ada/iso/debian-12.8.0-amd64-netinst.iso", BootOrder: "cdrom",
			NICs:    nic("52:54:00:3a:91:0c", emulator.Forward{Proto: "tcp", HostPort: 2222, GuestPort: 22}, emulator.Forward{Proto: "tcp", HostPort: 8080, GuestPort: 80}),
			Display: emulator.DisplayVNC, Snapshots: 2}, 23.4, 73*time.Minute+12*time.Second),
		run(tui.VM{Name: "alpine-arm", Profile: "alpine-3", OS: "Alpine Linux 3", Arch: emulator.ArchAArch64, Accel: emulator.AccelTCG, AccelReason: "TCG: aarch64 guest on an x86_64 host",
			CPUs: 2, MemoryMiB: 1024, Disks: disk("alpine-arm", 4, 412), NICs: nic("52:54:00:51:7e:a2"), Display: emulator.DisplayNone}, 8.1, 19*time.Minute),
		{Name: "fedora-ppc64", Profile: "fedora", OS: "Fedora 40", Arch: emulator.ArchPPC64, State: tui.StateStopped, Accel: emulator.AccelTCG, AccelReason: "TCG: ppc64 guest on an x86_64 host",
			CPUs: 2, MemoryMiB: 4096, Disks: disk("fedora-ppc64", 30, 9120), NICs: nic("52:54:00:c4:02:77"), Display: emulator.DisplayVNC, Snapshots: 1},
		{Name: "msdos-622", Profile: "msdos", OS: "MS-DOS 6.22", Arch: emulator.ArchI386, State: tui.StatePaused, Accel: emulator.AccelTCG, AccelReason: reason,
			CPUs: 1, MemoryMiB: 32, Disks: disk("msdos-622", 1, 48), Display: emulator.DisplayVNC, CPUPercent: 0, Uptime: 3*time.Hour + 4*time.Minute},
		{Name: "macos-9", Profile: "macos9", OS: "Mac OS 9.2", Arch: emulator.ArchPPC, State: tui.StateCrashed, Accel: emulator.AccelTCG, AccelReason: "TCG: ppc guest on an x86_64 host",
			CPUs: 1, MemoryMiB: 512, Disks: disk("macos-9", 8, 1450), NICs: nic("52:54:00:9e:10:4f"), Display: emulator.DisplayVNC,
			LastError: "qemu-system-ppc: could not load PowerPC BIOS 'openbios-ppc'"},
		{Name: "win98", Profile: "win98", OS: "Windows 98 SE", Arch: emulator.ArchI386, State: tui.StateStopped, Accel: emulator.AccelTCG, AccelReason: reason,
			CPUs: 1, MemoryMiB: 128, Disks: disk("win98", 2, 610), NICs: nic("52:54:00:77:3d:e1"), Display: emulator.DisplayVNC, Snapshots: 3},
		{Name: "openbsd-7", Profile: "openbsd", OS: "OpenBSD 7", Arch: emulator.ArchX86_64, State: tui.StateStopped, Accel: emulator.AccelTCG, AccelReason: reason,
			CPUs: 1, MemoryMiB: 1024, Disks: disk("openbsd-7", 16, 2200), NICs: nic("52:54:00:0b:5c:33"), Display: emulator.DisplayVNC},
		{Name: "raspios-arm", Profile: "debian-12", OS: "Raspberry Pi OS", Arch: emulator.ArchARM, State: tui.StateStopped, Accel: emulator.AccelTCG, AccelReason: "TCG: arm guest on an x86_64 host",
			CPUs: 1, MemoryMiB: 512, Disks: disk("raspios-arm", 8, 2900), NICs: nic("52:54:00:aa:02:18"), Display: emulator.DisplayVNC},
	}
	for _, vm := range vms {
		f.Add(vm)
		for i := 0; i < vm.Snapshots; i++ {
			_ = f.SaveSnapshot(context.Background(), vm.Name, fmt.Sprintf("snap%d", i+1), nil)
		}
	}
	f.SetLimits(tui.HostLimits{CPUs: 8, MemoryMiB: 32 << 10, FreeDiskBytes: 412 << 30})
	return jitterService{f}
}
