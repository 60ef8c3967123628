package machine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha512"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"vlab/emulator"
	"vlab/internal/lazyre"
	"vlab/profiles"
)

//go:embed gallery/gallery.toml
var builtinGallery []byte

// GalleryEnv names a gallery file that replaces both the built-in gallery
// and the one `vlab gallery update` keeps.
const GalleryEnv = "VLAB_GALLERY"

// galleryFile is the updated gallery in vlab's config folder;
// galleryURLFile names where it came from (`vlab gallery update` without a
// URL fetches from there again).
const (
	galleryFile    = "gallery.toml"
	galleryURLFile = "gallery.url"
)

// imagesDirName is the folder of downloaded cloud images in vlab's cache.
const imagesDirName = "images"

// maxGallerySize bounds a gallery file read from a server.
const maxGallerySize = 4 << 20

// Kinds of gallery entries.
const (
	KindISO   = "iso"   // an installer or live ISO: `vlab create --os ID`
	KindCloud = "cloud" // a disk image with cloud-init: `vlab create --image ID`
)

// GalleryEntry is one OS download the gallery knows, for one arch.
type GalleryEntry struct {
	ID      string `toml:"id" json:"id"`
	Title   string `toml:"title" json:"title"`
	Arch    string `toml:"arch" json:"arch"`
	Kind    string `toml:"kind" json:"kind"`
	URL     string `toml:"url" json:"url"`
	SHA256  string `toml:"sha256,omitempty" json:"sha256,omitempty"` // pinned checksum
	Sums    string `toml:"sums,omitempty" json:"sums,omitempty"`     // or the distro's checksum file
	Profile string `toml:"profile" json:"profile"`
}

// Gallery is the catalogue of OS downloads.
type Gallery struct {
	Entries []GalleryEntry `toml:"image"`
	Source  string         `toml:"-"` // "built-in", or the file it was read from
}

var galleryIDRE = lazyre.New(`^[a-z0-9][a-z0-9._-]*$`)

// ParseGallery reads and checks a gallery file: every entry has an id, a
// known arch and kind, an http(s) URL, a checksum (pinned or a sums URL)
// and an existing profile; no id appears twice for one arch.
func ParseGallery(data []byte) (Gallery, error) {
	var g Gallery
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&g)
	if err != nil {
		return Gallery{}, fmt.Errorf("gallery: %s", oneLine(err.Error()))
	}
	if un := md.Undecoded(); len(un) > 0 {
		return Gallery{}, fmt.Errorf("gallery: unknown key %q: check the file", un[0].String())
	}
	var errs []error
	seen := map[string]bool{}
	for i, e := range g.Entries {
		bad := func(why string) { errs = append(errs, fmt.Errorf("gallery entry %d (%q): %s", i+1, e.ID, why)) }
		if !galleryIDRE().MatchString(e.ID) {
			bad("id must be lower-case letters, digits, '.', '_' or '-'")
		}
		if _, err := emulator.ParseArch(e.Arch); err != nil {
			bad(err.Error())
		}
		if e.Kind != KindISO && e.Kind != KindCloud {
			bad("kind must be iso or cloud")
		}
		if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || path.Base(u.Path) == "/" {
			bad("url must be an http(s) URL of a file")
		}
		switch {
		case e.SHA256 != "":
			if _, err := ParseSHA256(e.SHA256); err != nil {
				bad(err.Error())
			}
		case e.Sums != "":
			if u, err := url.Parse(e.Sums); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("sums must be an http(s) URL")
			}
		default:
			bad("needs sha256 or sums: vlab never uses an unverified download")
		}
		if _, err := profiles.Get(e.Profile); err != nil {
			bad(err.Error())
		}
		k := e.ID + "/" + e.Arch
		if seen[k] {
			bad("listed twice for " + e.Arch)
		}
		seen[k] = true
	}
	if err := errors.Join(errs...); err != nil {
		return Gallery{}, err
	}
	return g, nil
}

// Gallery returns the gallery in force: $VLAB_GALLERY, else the one
// `vlab gallery update` saved, else the built-in one.
func (s *Store) Gallery() (Gallery, error) {
	src := os.Getenv(GalleryEnv)
	if src == "" {
		if p := filepath.Join(s.dirs.Config, galleryFile); fileExists(p) {
			src = p
		}
	}
	if src == "" {
		g, err := ParseGallery(builtinGallery)
		g.Source = "built-in"
		return g, err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return Gallery{}, fmt.Errorf("gallery %s: %w", src, err)
	}
	g, err := ParseGallery(data)
	if err != nil {
		return Gallery{}, fmt.Errorf("%s: %w", src, err)
	}
	g.Source = src
	return g, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ErrNoGalleryEntry is what Gallery.Find's errors wrap when the gallery
// has no entry of that id for that arch (a user's typo, not a failure).
var ErrNoGalleryEntry = errors.New("no such gallery entry")

// galleryMiss is Find's error: its own message, ErrNoGalleryEntry beneath.
type galleryMiss struct{ msg string }

func (e galleryMiss) Error() string { return e.msg }
func (e galleryMiss) Unwrap() error { return ErrNoGalleryEntry }

// Find returns the entry id for arch. An unknown id names the closest ids.
func (g Gallery) Find(id, arch string) (GalleryEntry, error) {
	var archs []string
	for _, e := range g.Entries {
		if e.ID == id {
			if e.Arch == arch {
				return e, nil
			}
			archs = append(archs, e.Arch)
		}
	}
	if len(archs) > 0 {
		return GalleryEntry{}, galleryMiss{fmt.Sprintf("gallery: %s has no %s image (it has %s): pick --arch %s", id, arch, strings.Join(archs, ", "), archs[0])}
	}
	if near := g.closeIDs(id); len(near) > 0 {
		return GalleryEntry{}, galleryMiss{fmt.Sprintf("gallery: no image %q: did you mean %s? (`vlab gallery` lists them)", id, strings.Join(near, ", "))}
	}
	return GalleryEntry{}, galleryMiss{fmt.Sprintf("gallery: no image %q: `vlab gallery` lists them", id)}
}

// closeIDs returns up to three ids near id: sharing its name part (debian
// for debian-13) or within a small edit distance.
func (g Gallery) closeIDs(id string) []string {
	type cand struct {
		id string
		d  int
	}
	best := map[string]int{}
	stem := strings.SplitN(id, "-", 2)[0]
	for _, e := range g.Entries {
		d := editDistance(id, e.ID)
		if stem != "" && strings.HasPrefix(e.ID, stem) {
			d = min(d, 2)
		}
		if d <= max(2, len(id)/3) {
			if old, ok := best[e.ID]; !ok || d < old {
				best[e.ID] = d
			}
		}
	}
	var cs []cand
	for k, d := range best {
		cs = append(cs, cand{k, d})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].d < cs[j].d || (cs[i].d == cs[j].d && cs[i].id < cs[j].id) })
	var out []string
	for i := 0; i < len(cs) && i < 3; i++ {
		out = append(out, cs[i].id)
	}
	return out
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// UpdateGallery downloads a gallery file from rawURL, checks it and keeps
// it in vlab's config folder (it then replaces the built-in one).
// An empty rawURL means the URL of the last update.
func (s *Store) UpdateGallery(ctx context.Context, rawURL string, client *http.Client) (Gallery, error) {
	if rawURL == "" {
		b, err := os.ReadFile(filepath.Join(s.dirs.Config, galleryURLFile))
		if err != nil {
			return Gallery{}, errors.New("gallery update: no earlier update to repeat: give the gallery's URL, e.g. `vlab gallery update https://example.org/gallery.toml`")
		}
		rawURL = strings.TrimSpace(string(b))
	}
	data, err := httpGetSmall(ctx, client, rawURL, maxGallerySize)
	if err != nil {
		return Gallery{}, fmt.Errorf("gallery update: %w", err)
	}
	g, err := ParseGallery(data)
	if err != nil {
		return Gallery{}, fmt.Errorf("gallery update from %s: %w", rawURL, err)
	}
	if err := ensurePrivateDir(s.dirs.Config); err != nil {
		return Gallery{}, fmt.Errorf("gallery update: %w", err)
	}
	p := filepath.Join(s.dirs.Config, galleryFile)
	if err := writeFileAtomic(p, data, 0o600); err != nil {
		return Gallery{}, fmt.Errorf("gallery update: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dirs.Config, galleryURLFile), []byte(rawURL+"\n"), 0o600); err != nil {
		return Gallery{}, fmt.Errorf("gallery update: %w", err)
	}
	g.Source = p
	return g, nil
}

// httpGetSmall fetches a small file (a gallery or a checksum list).
func httpGetSmall(ctx context.Context, client *http.Client, rawURL string, limit int64) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", rawURL)
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", rawURL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: server answered %s", rawURL, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", rawURL, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("get %s: larger than %d bytes: check the URL", rawURL, limit)
	}
	return data, nil
}

// bsdSumRE matches "SHA256 (file) = hex" lines (Fedora, FreeBSD).
var bsdSumRE = lazyre.New(`^(SHA256|SHA512) \((.+)\) = ([0-9a-fA-F]+)$`)

// SumFor finds file's checksum in a checksum list (GNU "hex  file" or
// "hex *file", or BSD "SHA256 (file) = hex" lines). It returns the hex
// digest, 64 characters for SHA-256 or 128 for SHA-512.
func SumFor(list []byte, file string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var sum, name string
		if m := bsdSumRE().FindStringSubmatch(line); m != nil {
			sum, name = m[3], m[2]
		} else if f := strings.Fields(line); len(f) == 2 {
			sum, name = f[0], strings.TrimPrefix(f[1], "*")
		} else {
			continue
		}
		if path.Base(name) != file {
			continue
		}
		sum = strings.ToLower(sum)
		if _, err := hex.DecodeString(sum); err != nil || (len(sum) != 64 && len(sum) != 128) {
			return "", fmt.Errorf("checksum of %s: %q is not a SHA-256 or SHA-512 digest", file, sum)
		}
		return sum, nil
	}
	return "", fmt.Errorf("checksum list names no %s", file)
}

// FetchOptions tune FetchGallery.
type FetchOptions struct {
	Progress func(Progress)
	Client   *http.Client
}

// FetchGallery downloads entry e into vlab's cache (ISOs into the ISO
// library, cloud images into the images folder) unless it is there, checks
// its checksum and returns the file's path. A partial download resumes; a
// download whose checksum does not match is deleted and fetched once more
// from the start, then refused.
func (s *Store) FetchGallery(ctx context.Context, e GalleryEntry, opts FetchOptions) (string, error) {
	want := e.SHA256
	if want == "" {
		list, err := httpGetSmall(ctx, opts.Client, e.Sums, maxGallerySize)
		if err != nil {
			return "", fmt.Errorf("fetch %s: checksum list: %w", e.ID, err)
		}
		u, _ := url.Parse(e.URL)
		if want, err = SumFor(list, path.Base(u.Path)); err != nil {
			return "", fmt.Errorf("fetch %s: %w", e.ID, err)
		}
	}
	lib, name := s.galleryLib(e)
	var err error
	for try := 0; try < 2; try++ {
		var got ISO
		got, err = s.fetchVerified(ctx, lib, e.URL, name, want, opts)
		if err == nil {
			return got.Path, nil
		}
		if !errors.Is(err, ErrChecksum) {
			return "", err
		}
	}
	return "", fmt.Errorf("fetch %s: %w (twice: the server or the gallery is wrong; nothing was kept)", e.ID, err)
}

// galleryLib is the library entry e is downloaded into (ISOs into the ISO
// library, cloud images into the images folder) and its name there.
func (s *Store) galleryLib(e GalleryEntry) (*ISOLibrary, string) {
	lib := s.ISOs()
	if e.Kind == KindCloud {
		lib = &ISOLibrary{Dir: filepath.Join(s.dirs.Cache, imagesDirName)}
	}
	u, _ := url.Parse(e.URL)
	return lib, e.ID + "-" + e.Arch + "-" + path.Base(u.Path)
}

// GalleryFile is the path FetchGallery keeps entry e at (the file need not
// exist yet): what a VM made from it will use, e.g. in a command-line
// preview before the download.
func (s *Store) GalleryFile(e GalleryEntry) string {
	lib, name := s.galleryLib(e)
	return filepath.Join(lib.Dir, name)
}

// fetchVerified downloads into lib and checks want: a SHA-256 through the
// library itself, a SHA-512 here (the entry is removed on a mismatch).
func (s *Store) fetchVerified(ctx context.Context, lib *ISOLibrary, rawURL, name, want string, opts FetchOptions) (ISO, error) {
	g := GetOptions{Name: name, Progress: opts.Progress, Client: opts.Client}
	if len(want) == 64 {
		g.SHA256 = want
	}
	got, err := lib.Download(ctx, rawURL, g)
	if err != nil || len(want) == 64 {
		return got, err
	}
	f, err := os.Open(got.Path)
	if err != nil {
		return ISO{}, err
	}
	h := sha512.New()
	_, err = io.Copy(h, ctxReader{ctx, f, nil})
	f.Close()
	if err != nil {
		return ISO{}, fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != want {
		_ = lib.Remove(ctx, name)
		return ISO{}, fmt.Errorf("download %s: %w: sha512 is %s, expected %s; the download was deleted", rawURL, ErrChecksum, sum, want)
	}
	return got, nil
}
