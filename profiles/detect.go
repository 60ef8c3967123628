package profiles

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"

	"vlab/emulator"
)

// Sources of a detection.
const (
	SourceOSInfo  = "osinfo-db"
	SourceBuiltin = "built-in"
)

// Unknown is what Detection.ProfileName and OSLabel say for an ISO nothing
// identifies.
const Unknown = "unknown"

// Detection is what vlab concluded about an ISO.
type Detection struct {
	Media   Media         `json:"media"`
	OS      string        `json:"os"`      // osinfo-style short id (debian12, win11...), "" when unknown
	OSName  string        `json:"os_name"` // "Debian 12", "" when unknown
	Arch    emulator.Arch `json:"arch"`    // the media's arch, ArchUnknown when unknown
	Profile string        `json:"profile"` // the profile it maps to, "" when none does
	Source  string        `json:"source"`  // osinfo-db or built-in, "" when unknown
	// Candidates are the OSes that all match equally when the media is
	// ambiguous (then OS and Profile are empty).
	Candidates []string `json:"candidates,omitempty"`
}

// Known reports whether the ISO maps to a profile.
func (d Detection) Known() bool { return d.Profile != "" }

// ProfileName is the profile, or "unknown".
func (d Detection) ProfileName() string {
	if d.Profile == "" {
		return Unknown
	}
	return d.Profile
}

// OSLabel is the OS's name (or short id), or "unknown".
func (d Detection) OSLabel() string {
	switch {
	case d.OSName != "":
		return d.OSName
	case d.OS != "":
		return d.OS
	case len(d.Candidates) > 0:
		return "ambiguous: one of " + strings.Join(d.Candidates, ", ")
	}
	return Unknown
}

// Detector identifies media against an osinfo-db (optional) and the
// built-in rules.
type Detector struct {
	OSInfo *OSInfoDB // nil: built-in rules only
}

// NewDetector loads the osinfo-db at dir when there is one; without it the
// detector uses the built-in rules alone.
func NewDetector(dir string) *Detector {
	d := &Detector{}
	if dir != "" {
		if db, err := LoadOSInfo(dir); err == nil {
			d.OSInfo = db
		}
	}
	return d
}

var defaultDetector = sync.OnceValue(func() *Detector { return NewDetector(OSInfoDir()) })

// Detect identifies the ISO image at path with the system's osinfo-db (see
// OSInfoDir) and the built-in rules. An ISO nothing identifies is not an
// error: its Detection has an empty Profile.
func Detect(path string) (Detection, error) {
	m, err := ReadMediaFile(path)
	if err != nil {
		return Detection{}, err
	}
	return defaultDetector().Identify(m), nil
}

// Identify matches m against osinfo-db first, then the built-in rules.
func (d *Detector) Identify(m Media) Detection {
	det := Detection{Media: m}
	if d.OSInfo != nil {
		switch ms := d.OSInfo.Match(m); len(ms) {
		case 0:
		case 1:
			om := ms[0]
			arch, _ := emulator.ParseArch(om.Arch)
			det.OS, det.OSName, det.Arch, det.Source = om.ShortID, om.Name, arch, SourceOSInfo
			det.Profile = profileForOS(om.ShortID, om.Family, arch)
			if det.Profile != "" {
				return det
			}
		default:
			// Several OSes claim the media: name them, guess none.
			for _, om := range ms {
				det.Candidates = append(det.Candidates, om.ShortID)
			}
			det.Source = SourceOSInfo
		}
	}
	if r, groups, ok := matchRules(m); ok {
		return Detection{
			Media:   m,
			OS:      expand(r.OS, groups),
			OSName:  expand(r.Name, groups),
			Arch:    r.Arch,
			Profile: r.Profile,
			Source:  SourceBuiltin,
		}
	}
	return det
}

// profileForOS maps an osinfo short id to the profile whose osinfo globs
// name it, for the media's arch. 32-bit x86 media may use an x86_64
// profile; a Linux no profile names gets the generic one.
func profileForOS(shortID, family string, arch emulator.Arch) string {
	var x86 string
	for _, p := range all() {
		for _, g := range p.OSInfo {
			if ok, _ := path.Match(g, shortID); !ok {
				continue
			}
			if p.Arch == arch {
				return p.Name
			}
			if arch == emulator.ArchI386 && p.Arch == emulator.ArchX86_64 && x86 == "" {
				x86 = p.Name
			}
		}
	}
	if x86 != "" {
		return x86
	}
	if family == "linux" && (arch == emulator.ArchX86_64 || arch == emulator.ArchI386) {
		return "linux-bios"
	}
	return ""
}

// rulesFile is the data file of the built-in rules.
const rulesFile = "rules.toml"

// rule is one built-in identification rule (see data/rules.toml).
type rule struct {
	VolumeID      string        `toml:"volume_id"`
	SystemID      string        `toml:"system_id"`
	PublisherID   string        `toml:"publisher_id"`
	ApplicationID string        `toml:"application_id"`
	OS            string        `toml:"os"`
	Name          string        `toml:"name"`
	Arch          emulator.Arch `toml:"arch"`
	Profile       string        `toml:"profile"`

	volume, system, publisher, application *regexp.Regexp
}

var loadRules = sync.OnceValues(func() ([]rule, error) { return readRules(dataFS, "data/"+rulesFile) })

func readRules(fsys fs.FS, name string) ([]rule, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("read iso rules: %w", err)
	}
	var doc struct {
		Rule []rule `toml:"rule"`
	}
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		return nil, fmt.Errorf("iso rules: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("iso rules: unknown key %q", und[0].String())
	}
	var errs []error
	for i := range doc.Rule {
		r := &doc.Rule[i]
		if r.VolumeID == "" || r.OS == "" || r.Name == "" || r.Profile == "" || r.Arch == emulator.ArchUnknown {
			errs = append(errs, fmt.Errorf("iso rule %d: volume_id, os, name, arch and profile are required", i+1))
			continue
		}
		for _, f := range []struct {
			pat string
			re  **regexp.Regexp
		}{{r.VolumeID, &r.volume}, {r.SystemID, &r.system}, {r.PublisherID, &r.publisher}, {r.ApplicationID, &r.application}} {
			if f.pat == "" {
				continue
			}
			re, err := regexp.Compile(f.pat)
			if err != nil {
				errs = append(errs, fmt.Errorf("iso rule %d: %w", i+1, err))
				continue
			}
			*f.re = re
		}
	}
	return doc.Rule, errors.Join(errs...)
}

// matchRules returns the first built-in rule matching m, with the volume
// id's capture groups.
func matchRules(m Media) (rule, []string, bool) {
	rules, err := loadRules()
	if err != nil {
		panic("vlab: embedded iso rules are invalid: " + err.Error())
	}
	for _, r := range rules {
		groups := r.volume.FindStringSubmatch(m.VolumeID)
		if groups == nil || !matchField(r.system, m.SystemID) ||
			!matchField(r.publisher, m.PublisherID) || !matchField(r.application, m.ApplicationID) {
			continue
		}
		return r, groups, true
	}
	return rule{}, nil, false
}

// expand replaces {1}, {2}... with capture groups.
func expand(s string, groups []string) string {
	for i := len(groups) - 1; i >= 1; i-- {
		s = strings.ReplaceAll(s, "{"+strconv.Itoa(i)+"}", groups[i])
	}
	return s
}
