package profiles

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// DefaultOSInfoDir is where Debian's osinfo-db package installs the
// database; $OSINFO_SYSTEM_DIR overrides it, as for libosinfo.
const DefaultOSInfoDir = "/usr/share/osinfo"

// OSInfoDir returns the osinfo-db directory to read.
func OSInfoDir() string {
	if d := os.Getenv("OSINFO_SYSTEM_DIR"); d != "" {
		return d
	}
	return DefaultOSInfoDir
}

// OSInfoDB is the installation-media part of an osinfo-db: for every OS its
// short id, name, family and the ISO fields its media carry.
type OSInfoDB struct {
	Dir   string
	media []osinfoMedia
	// Skipped counts media whose patterns Go's regexp cannot compile
	// (osinfo-db uses PCRE; a few entries use look-ahead).
	Skipped int
}

// osinfoMedia is one <media> entry with its OS.
type osinfoMedia struct {
	osID, shortID, name, family, arch      string
	volume, system, publisher, application *regexp.Regexp
}

// specificity counts the fields the entry matches on: a match on more of
// them is the more certain one.
func (m osinfoMedia) specificity() int {
	n := 0
	for _, re := range []*regexp.Regexp{m.volume, m.system, m.publisher, m.application} {
		if re != nil {
			n++
		}
	}
	return n
}

// XML shapes of the parts of an osinfo-db os file that detection needs.
type xmlOSFile struct {
	OS []xmlOS `xml:"os"`
}

type xmlOS struct {
	ID       string     `xml:"id,attr"`
	ShortIDs []string   `xml:"short-id"`
	Names    []xmlText  `xml:"name"`
	Family   string     `xml:"family"`
	Media    []xmlMedia `xml:"media"`
}

type xmlText struct {
	Lang  string `xml:"lang,attr"`
	Value string `xml:",chardata"`
}

type xmlMedia struct {
	Arch string  `xml:"arch,attr"`
	ISO  *xmlISO `xml:"iso"`
}

type xmlISO struct {
	VolumeID      string `xml:"volume-id"`
	SystemID      string `xml:"system-id"`
	PublisherID   string `xml:"publisher-id"`
	ApplicationID string `xml:"application-id"`
}

// LoadOSInfo reads the os/ tree of the osinfo-db at dir. A missing
// directory is an error that wraps fs.ErrNotExist; single files that do not
// parse are skipped, as libosinfo skips them.
func LoadOSInfo(dir string) (*OSInfoDB, error) {
	root := filepath.Join(dir, "os")
	if _, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("load osinfo-db %s: %w", dir, err)
	}
	db := &OSInfoDB{Dir: dir}
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // an unreadable subfolder is skipped
		}
		if !d.IsDir() && strings.HasSuffix(p, ".xml") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load osinfo-db %s: %w", dir, err)
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || !strings.Contains(string(data), "<media") {
			continue
		}
		var doc xmlOSFile
		if xml.Unmarshal(data, &doc) != nil {
			continue
		}
		for _, o := range doc.OS {
			db.add(o)
		}
	}
	if len(db.media) == 0 {
		return nil, fmt.Errorf("load osinfo-db %s: %w", dir, errors.New("no installation media found"))
	}
	return db, nil
}

func (db *OSInfoDB) add(o xmlOS) {
	if len(o.ShortIDs) == 0 {
		return
	}
	name := ""
	for _, n := range o.Names {
		if n.Lang == "" {
			name = strings.TrimSpace(n.Value)
			break
		}
	}
	for _, m := range o.Media {
		if m.ISO == nil {
			continue
		}
		e := osinfoMedia{osID: o.ID, shortID: o.ShortIDs[0], name: name, family: o.Family, arch: m.Arch}
		ok := true
		for _, f := range []struct {
			pat string
			re  **regexp.Regexp
		}{
			{m.ISO.VolumeID, &e.volume},
			{m.ISO.SystemID, &e.system},
			{m.ISO.PublisherID, &e.publisher},
			{m.ISO.ApplicationID, &e.application},
		} {
			pat := strings.TrimSpace(f.pat)
			if pat == "" {
				continue
			}
			re, err := regexp.Compile(pat)
			if err != nil {
				ok = false
				break
			}
			*f.re = re
		}
		if !ok {
			db.Skipped++
			continue
		}
		if e.specificity() == 0 {
			continue // an entry that would match anything
		}
		db.media = append(db.media, e)
	}
}

// Len is the number of media entries loaded.
func (db *OSInfoDB) Len() int { return len(db.media) }

// osinfoMatch is an osinfo-db entry that matches a Media.
type osinfoMatch struct {
	ShortID, Name, Family, Arch string
}

// Match returns the entries matching m. Like libosinfo, every field an
// entry names must match (an unanchored regular expression search). Only the
// entries naming the most fields are kept, one per OS, in file order: more
// than one means the media is ambiguous (Windows 10 and 11 ISOs share their
// volume id pattern).
func (db *OSInfoDB) Match(m Media) []osinfoMatch {
	var out []osinfoMatch
	bestN := 0
	for _, e := range db.media {
		if !matchField(e.volume, m.VolumeID) || !matchField(e.system, m.SystemID) ||
			!matchField(e.publisher, m.PublisherID) || !matchField(e.application, m.ApplicationID) {
			continue
		}
		n := e.specificity()
		if n < bestN {
			continue
		}
		if n > bestN {
			out, bestN = out[:0], n
		}
		dup := false
		for _, o := range out {
			dup = dup || o.ShortID == e.shortID
		}
		if !dup {
			out = append(out, osinfoMatch{ShortID: e.shortID, Name: e.name, Family: e.family, Arch: e.arch})
		}
	}
	return out
}

func matchField(re *regexp.Regexp, v string) bool {
	if re == nil {
		return true
	}
	if v == "" {
		return false
	}
	return re.MatchString(v)
}
