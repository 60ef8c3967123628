// Package profiles holds vlab's OS presets and identifies installer ISOs.
//
// A profile is the virtual hardware an operating system wants: arch, machine
// type and its options (via=pmu on mac99...), CPU model, memory and disk
// sizes, firmware, disk bus, NIC model, display device, pointer device,
// sound card, RTC in local time, boot order and notes for the user. The
// presets are TOML data files embedded from data/ (one file per profile, the
// file name is the profile name), not Go literals; Get and List serve them.
//
// Detect identifies an ISO image: ReadMedia reads its ISO 9660 primary
// volume descriptor (volume, system, publisher and application ids) and its
// El Torito boot catalog (BIOS and EFI boot entries), and the result is
// matched against osinfo-db (the libosinfo database virt-install and GNOME
// Boxes use, /usr/share/osinfo) when it is installed, then against the
// built-in volume-id rules in data/rules.toml. An ISO neither knows is
// reported as unknown rather than guessed.
//
// The volume descriptor reader is our own, about a hundred lines: the ISO
// libraries the module proxy serves (github.com/kdomanski/iso9660, last
// released 2023, and github.com/diskfs/go-diskfs) expose only the volume id,
// not the system, publisher and application ids osinfo-db matches on, nor the
// El Torito platform entries.
package profiles
