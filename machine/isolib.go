package machine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"vlab/emulator"
	"vlab/internal/lazyre"
)

// ErrChecksum is returned when a file's SHA-256 is not the expected one.
var ErrChecksum = errors.New("checksum mismatch")

// Names of the ISO library's own files in its folder.
const (
	isoDirName   = "isos"
	isoIndexFile = "index.json"
	isoIndexLock = ".index.lock"
	partSuffix   = ".part"
)

// ISOLibrary is the folder of installer ISOs in vlab's cache dir
// ($XDG_CACHE_HOME/vlab/isos): each file with its SHA-256 and where it came
// from, recorded in index.json.
type ISOLibrary struct {
	Dir string
}

// ISOs returns the store's ISO library.
func (s *Store) ISOs() *ISOLibrary {
	return &ISOLibrary{Dir: filepath.Join(s.dirs.Cache, isoDirName)}
}

// ISO is one library entry.
type ISO struct {
	Name   string    `json:"name"`
	Path   string    `json:"path"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256"`
	Source string    `json:"source"` // the file or URL it came from
	Added  time.Time `json:"added"`
	Linked bool      `json:"linked,omitempty"` // a symlink to Source, not a copy
}

var isoNameRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// ValidateISOName checks a library name: one plain file name.
func ValidateISOName(name string) error {
	switch {
	case name == "":
		return errors.New("iso name is empty")
	case len(name) > 200:
		return fmt.Errorf("iso name is %d bytes long: use at most 200", len(name))
	case !isoNameRE().MatchString(name) || strings.HasSuffix(name, partSuffix) || name == isoIndexFile:
		return fmt.Errorf("iso name %q is invalid: use letters, digits, '.', '_', '+' or '-', e.g. debian-12.iso", printable(name))
	}
	return nil
}

// ParseSHA256 normalises a hex SHA-256 (an optional "sha256:" prefix and
// case are accepted).
func ParseSHA256(s string) (string, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimPrefix(t, "sha256:")
	if b, err := hex.DecodeString(t); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("sha256 %q is not 64 hex digits: copy it from the distribution's SHA256SUMS", s)
	}
	return t, nil
}

type isoIndex struct {
	ISOs map[string]ISO `json:"isos"`
}

func (l *ISOLibrary) ensure() error {
	if err := mkdirPrivate(l.Dir); err != nil {
		return fmt.Errorf("iso library %s: %w", l.Dir, err)
	}
	return nil
}

// update runs fn on the index under the library lock and writes it back
// when fn succeeds.
func (l *ISOLibrary) update(ctx context.Context, fn func(ix *isoIndex) error) error {
	if err := l.ensure(); err != nil {
		return err
	}
	lk, err := lock(ctx, filepath.Join(l.Dir, isoIndexLock))
	if err != nil {
		return fmt.Errorf("iso library: %w", err)
	}
	defer lk.unlock()
	ix, err := l.readIndex()
	if err != nil {
		return err
	}
	if err := fn(ix); err != nil {
		return err
	}
	data, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(l.Dir, isoIndexFile), append(data, '\n'), 0o600)
}

func (l *ISOLibrary) readIndex() (*isoIndex, error) {
	ix := &isoIndex{ISOs: map[string]ISO{}}
	data, err := os.ReadFile(filepath.Join(l.Dir, isoIndexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return ix, nil
	}
	if err != nil {
		return nil, fmt.Errorf("iso library: %w", err)
	}
	if err := json.Unmarshal(data, ix); err != nil {
		return nil, fmt.Errorf("iso library index %s is corrupt (%v): delete it and add the ISOs again", filepath.Join(l.Dir, isoIndexFile), err)
	}
	if ix.ISOs == nil {
		ix.ISOs = map[string]ISO{}
	}
	return ix, nil
}

// List returns the library's ISOs sorted by name. Entries whose file is
// gone (a symlink target moved, a file deleted by hand) are left out.
func (l *ISOLibrary) List() ([]ISO, error) {
	ix, err := l.readIndex()
	if err != nil {
		return nil, err
	}
	out := []ISO{}
	for name, e := range ix.ISOs {
		if e, err := l.withFile(name, e); err == nil {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Get returns the entry called name. Like List, it knows no entry whose
// file is gone.
func (l *ISOLibrary) Get(name string) (ISO, error) {
	ix, err := l.readIndex()
	if err != nil {
		return ISO{}, err
	}
	if e, ok := ix.ISOs[name]; ok {
		if e, err := l.withFile(name, e); err == nil {
			return e, nil
		}
	}
	return ISO{}, fmt.Errorf("iso %q is not in the library: see `vlab iso list`", name)
}

// withFile completes index entry e, called name, with its file's path and
// size; it fails when the file is gone.
func (l *ISOLibrary) withFile(name string, e ISO) (ISO, error) {
	path := filepath.Join(l.Dir, name)
	fi, err := os.Stat(path)
	if err != nil {
		return ISO{}, err
	}
	e.Name, e.Path, e.Size = name, path, fi.Size()
	return e, nil
}

// AddOptions tune Add.
type AddOptions struct {
	Name    string // library name; default: the source's base name
	Symlink bool   // link to the source instead of copying it
	SHA256  string // when set, the file must have this checksum
	// Progress reports the bytes read to checksum the file and then
	// copied, out of twice its size (a link copies nothing: it jumps to
	// the end). Called from Add's goroutine, ending at total on success.
	Progress ProgressFunc
}

// Add puts the ISO file src into the library: a hard link when src is on
// the same file system, else a copy (or a symlink with opts.Symlink), and
// records its SHA-256. A copy is owner-only; a hard link shares src's mode
// (the same bytes are as readable at src), inside the 0700 library.
func (l *ISOLibrary) Add(ctx context.Context, src string, opts AddOptions) (ISO, error) {
	if err := checkISO(src); err != nil {
		return ISO{}, err
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return ISO{}, fmt.Errorf("add iso %s: %w", src, err)
	}
	name := opts.Name
	if name == "" {
		name = filepath.Base(abs)
	}
	if err := ValidateISOName(name); err != nil {
		return ISO{}, fmt.Errorf("add iso %s: %w: give one with --name", src, err)
	}
	want := ""
	if opts.SHA256 != "" {
		if want, err = ParseSHA256(opts.SHA256); err != nil {
			return ISO{}, err
		}
	}
	if err := l.ensure(); err != nil {
		return ISO{}, err
	}
	dst := filepath.Join(l.Dir, name)
	if _, err := os.Lstat(dst); err == nil {
		return ISO{}, fmt.Errorf("add iso %s: %q is already in the library: remove it first with `vlab iso rm %s` or pick another --name", src, name, name)
	}
	var size int64
	if fi, err := os.Stat(abs); err == nil {
		size = fi.Size()
	}
	total := 2 * size
	report := newByteReporter(opts.Progress, total)
	sum, err := hashFile(ctx, abs, report.at(0))
	if err != nil {
		return ISO{}, fmt.Errorf("add iso %s: %w", src, err)
	}
	if want != "" && sum != want {
		return ISO{}, fmt.Errorf("add iso %s: %w: sha256 is %s, expected %s", src, ErrChecksum, sum, want)
	}
	tmp := filepath.Join(l.Dir, "."+name+".adding")
	os.Remove(tmp)
	switch {
	case opts.Symlink:
		err = os.Symlink(abs, tmp)
	default:
		if err = linkFile(abs, tmp); err != nil {
			err = copyFile(ctx, abs, tmp, report.at(size))
		}
	}
	if err != nil {
		os.Remove(tmp)
		return ISO{}, fmt.Errorf("add iso %s: %w", src, err)
	}
	e := ISO{Name: name, SHA256: sum, Source: abs, Added: time.Now().UTC(), Linked: opts.Symlink}
	err = l.update(ctx, func(ix *isoIndex) error {
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("add iso %s: %q is already in the library", src, name)
		}
		if err := os.Rename(tmp, dst); err != nil {
			return fmt.Errorf("add iso %s: %w", src, err)
		}
		ix.ISOs[name] = e
		return nil
	})
	if err != nil {
		os.Remove(tmp)
		return ISO{}, err
	}
	report.finish()
	return l.Get(name)
}

// Remove deletes name's file (or symlink) and its index entry.
func (l *ISOLibrary) Remove(ctx context.Context, name string) error {
	if err := ValidateISOName(name); err != nil {
		return err
	}
	return l.update(ctx, func(ix *isoIndex) error {
		_, known := ix.ISOs[name]
		err := os.Remove(filepath.Join(l.Dir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove iso %q: %w", name, err)
		}
		if !known && err != nil {
			return fmt.Errorf("remove iso %q: not in the library: see `vlab iso list`", name)
		}
		delete(ix.ISOs, name)
		return nil
	})
}

// Progress is a download's state, reported to GetOptions.Progress.
type Progress struct {
	Done    int64 // bytes on disk, the resumed part included
	Total   int64 // -1 when the server does not say
	Resumed int64 // bytes that were already there when this run started
}

// GetOptions tune Download.
type GetOptions struct {
	Name     string         // library name; default: the URL's last path element
	SHA256   string         // expected checksum; "" records whatever arrives
	Progress func(Progress) // called as bytes arrive (at most every 100ms) and once at the end
	Client   *http.Client   // default http.DefaultClient
	MaxSize  int64          // refuse a file larger than this; 0 means MaxISOSize
}

// Download fetches url into the library. A partial download from an earlier
// run (name.part) is resumed with an HTTP Range request; a server that
// ignores the range restarts it. The finished file must match opts.SHA256:
// on a mismatch the file is deleted, so the next run starts clean. An
// interrupted download keeps its part for the next run.
func (l *ISOLibrary) Download(ctx context.Context, rawURL string, opts GetOptions) (ISO, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ISO{}, fmt.Errorf("download %q: not an http(s) URL", rawURL)
	}
	want := ""
	if opts.SHA256 != "" {
		if want, err = ParseSHA256(opts.SHA256); err != nil {
			return ISO{}, err
		}
	}
	name := opts.Name
	if name == "" {
		name = path.Base(u.Path)
	}
	if err := ValidateISOName(name); err != nil {
		return ISO{}, fmt.Errorf("download %s: %w: give one with --name", rawURL, err)
	}
	if err := l.ensure(); err != nil {
		return ISO{}, err
	}
	dst := filepath.Join(l.Dir, name)
	if e, err := l.Get(name); err == nil {
		if want == "" || e.SHA256 == want {
			return e, nil // already here and verified
		}
		return ISO{}, fmt.Errorf("download %s: %q is already in the library with sha256 %s: remove it first with `vlab iso rm %s`", rawURL, name, e.SHA256, name)
	}
	if _, err := os.Lstat(dst); err == nil {
		return ISO{}, fmt.Errorf("download %s: %s exists but is not in the library: remove it or pick another --name", rawURL, dst)
	}
	part := dst + partSuffix
	// One download per file at a time; others wait for it.
	lk, err := lock(ctx, part+".lock")
	if err != nil {
		return ISO{}, fmt.Errorf("download %s: %w", rawURL, err)
	}
	defer func() {
		os.Remove(part + ".lock")
		lk.unlock()
	}()
	if e, err := l.Get(name); err == nil && (want == "" || e.SHA256 == want) {
		return e, nil // another vlab finished it while we waited
	}
	sum, err := l.fetch(ctx, rawURL, part, opts)
	if err != nil {
		if fi, serr := os.Stat(part); serr == nil && fi.Size() == 0 {
			os.Remove(part) // nothing to resume
		}
		return ISO{}, err
	}
	if want != "" && sum != want {
		os.Remove(part)
		return ISO{}, fmt.Errorf("download %s: %w: sha256 is %s, expected %s; the download was deleted", rawURL, ErrChecksum, sum, want)
	}
	e := ISO{Name: name, SHA256: sum, Source: rawURL, Added: time.Now().UTC()}
	err = l.update(ctx, func(ix *isoIndex) error {
		if err := os.Rename(part, dst); err != nil {
			return fmt.Errorf("download %s: %w", rawURL, err)
		}
		ix.ISOs[name] = e
		return nil
	})
	if err != nil {
		return ISO{}, err
	}
	return l.Get(name)
}

// fetch downloads rawURL into part, resuming what part holds, and returns
// the SHA-256 of the whole file.
func (l *ISOLibrary) fetch(ctx context.Context, rawURL, part string, opts GetOptions) (string, error) {
	client := opts.Client
	if client == nil {
		client = http.DefaultClient
	}
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", rawURL, err)
	}
	defer f.Close()
	h := sha256.New()
	have, err := io.Copy(h, f) // hash what an earlier run left
	if err != nil {
		return "", fmt.Errorf("download %s: read %s: %w", rawURL, part, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", rawURL, err)
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	limit := opts.MaxSize
	if limit <= 0 {
		limit = MaxISOSize
	}
	d := &download{f: f, h: h, have: have, total: -1, limit: limit, progress: opts.Progress}
	whole, err := d.answer(resp)
	if err == nil && !whole {
		err = d.receive(resp.Body)
	}
	if err != nil {
		return "", fmt.Errorf("download %s: %w", rawURL, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// download is one fetch into a part file: what it held before, the hash
// of what it holds, and the size the server announced (-1: none).
type download struct {
	f           *os.File
	h           hash.Hash
	have, total int64
	limit       int64 // the most vlab accepts
	progress    func(Progress)
}

// answer reads the server's status: a resumed range (checked against what
// the part holds), the whole file (the part starts over), or a part that
// is already whole (whole is true).
func (d *download) answer(resp *http.Response) (whole bool, err error) {
	switch {
	case d.have > 0 && resp.StatusCode == http.StatusPartialContent:
		size, err := checkResume(d.have, resp.Header.Get("Content-Range"), resp.ContentLength)
		if err != nil {
			return false, err
		}
		d.total = size
	case d.have > 0 && resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// The part is already whole (or longer than the file): let the
		// checksum decide.
		report(d.progress, Progress{Done: d.have, Total: d.have, Resumed: d.have})
		return true, nil
	case resp.StatusCode == http.StatusOK:
		if d.have > 0 { // the server ignores ranges: start over
			if err := d.f.Truncate(0); err != nil {
				return false, err
			}
			d.h.Reset()
			d.have = 0
		}
		d.total = resp.ContentLength
	default:
		return false, fmt.Errorf("server answered %s", resp.Status)
	}
	if d.total > d.limit {
		return false, fmt.Errorf("server announces %d bytes, larger than the %d vlab accepts for an ISO: check the URL", d.total, d.limit)
	}
	return false, nil
}

// receive appends body to the part, hashing it, up to what the server
// announced (or the size cap), and syncs the part. A server that sends
// more than it announced, or without end, is refused.
func (d *download) receive(body io.Reader) error {
	if _, err := d.f.Seek(d.have, io.SeekStart); err != nil {
		return err
	}
	total, limit := d.total, d.limit // d.have: what an earlier run left
	// Read at most what the server announced (or the size cap) and one
	// byte more, to tell a server that sends too much.
	want := limit - d.have
	if total >= 0 {
		want = total - d.have
	}
	pw := &progressWriter{h: d.h, done: d.have, total: total, resumed: d.have, fn: d.progress}
	n, copyErr := io.Copy(io.MultiWriter(d.f, pw), io.LimitReader(body, want))
	if copyErr == nil {
		var one [1]byte
		if k, _ := io.ReadFull(body, one[:]); k > 0 {
			if total >= 0 {
				copyErr = fmt.Errorf("server sent more than the %d bytes it announced", total)
			} else {
				copyErr = fmt.Errorf("file larger than the %d bytes vlab accepts for an ISO", limit)
			}
		}
	}
	if err := d.f.Sync(); err != nil && copyErr == nil {
		copyErr = err
	}
	got := d.have + n
	if copyErr == nil && total >= 0 && got != total {
		copyErr = io.ErrUnexpectedEOF
	}
	if copyErr != nil {
		if got > limit-1 && total < 0 {
			// The server streams without end: keep only what an earlier
			// run had.
			_ = d.f.Truncate(d.have)
			return fmt.Errorf("the server sent more than %d bytes, larger than vlab accepts for an ISO: check the URL", limit)
		}
		return fmt.Errorf("interrupted after %d of %s bytes (%v): run the same command again to resume", got, sizeOrUnknown(total), copyErr)
	}
	report(d.progress, Progress{Done: got, Total: max(total, got), Resumed: d.have})
	return nil
}

// MaxISOSize is the largest file `vlab iso get` accepts (64 GiB: dual-layer
// Blu-ray images fit): a server that announces more, or streams without end,
// is refused.
const MaxISOSize = 64 << 30

func sizeOrUnknown(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return strconv.FormatInt(n, 10)
}

// checkResume checks a 206 answer to "Range: bytes=HAVE-": its Content-Range
// must start at have, run to the file's last byte and agree with
// Content-Length (-1 when absent). It returns the file's size (-1 unknown).
func checkResume(have int64, contentRange string, contentLength int64) (int64, error) {
	start, end, size, ok := parseContentRange(contentRange)
	switch {
	case !ok:
		return 0, fmt.Errorf("server sent a malformed Content-Range %q: try again later or without the .part file", contentRange)
	case start != have:
		return 0, fmt.Errorf("server resumed at the wrong offset (Content-Range %q for %d bytes on disk): delete the .part file to start over", contentRange, have)
	case size >= 0 && end != size-1:
		return 0, fmt.Errorf("server sent Content-Range %q, not the rest of the file from byte %d: delete the .part file to start over", contentRange, have)
	case contentLength >= 0 && contentLength != end-start+1:
		return 0, fmt.Errorf("server sent Content-Length %d for Content-Range %q: try again later", contentLength, contentRange)
	}
	return size, nil
}

// parseContentRange reads "bytes START-END/SIZE" (SIZE may be "*"):
// non-negative decimal numbers, START <= END, END < SIZE when SIZE is known.
func parseContentRange(s string) (start, end, size int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	num := func(s string) (int64, bool) {
		if s == "" || strings.TrimLeft(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	var okA, okB bool
	start, okA = num(a)
	end, okB = num(b)
	if !okA || !okB || end < start {
		return 0, 0, 0, false
	}
	size = -1
	if sz != "*" {
		if size, ok = num(sz); !ok || end >= size {
			return 0, 0, 0, false
		}
	}
	return start, end, size, true
}

// progressWriter hashes what is written and reports progress at most every
// 100ms.
type progressWriter struct {
	h                    hash.Hash
	done, total, resumed int64
	fn                   func(Progress)
	last                 time.Time
}

func (w *progressWriter) Write(p []byte) (int, error) {
	w.h.Write(p)
	w.done += int64(len(p))
	if w.fn != nil && time.Since(w.last) >= 100*time.Millisecond {
		w.last = time.Now()
		w.fn(Progress{Done: w.done, Total: w.total, Resumed: w.resumed})
	}
	return len(p), nil
}

func report(fn func(Progress), p Progress) {
	if fn != nil {
		fn(p)
	}
}

// hashFile returns the hex SHA-256 of the file at path.
func hashFile(ctx context.Context, path string, counted func(n int64)) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f, counted}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// linkFile is os.Link; tests replace it to take the copy path.
var linkFile = os.Link

// copyFile copies src to dst (which must not exist), telling counted
// (when not nil) how many bytes it has read so far.
func copyFile(ctx context.Context, src, dst string, counted func(n int64)) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, ctxReader{ctx, in, counted}); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	return out.Close()
}

// ctxReader stops a long copy when ctx ends, and tells counted (when not
// nil) the bytes of each read.
type ctxReader struct {
	ctx     context.Context
	r       io.Reader
	counted func(n int64)
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if n > 0 && c.counted != nil {
		c.counted(int64(n))
	}
	return n, err
}

// byteReporter turns the bytes of a multi-step job (checksum, then copy)
// into ProgressFunc calls: increasing, at most one per 1% of total, and
// ending at total.
type byteReporter struct {
	fn          ProgressFunc
	total, done int64
	last        int64 // done at the last call; -1 before the first
}

func newByteReporter(fn ProgressFunc, total int64) *byteReporter {
	return &byteReporter{fn: fn, total: total, last: -1}
}

// at returns the counter of a step that starts base bytes into the job.
func (r *byteReporter) at(base int64) func(n int64) {
	if r.fn == nil || r.total <= 0 {
		return nil
	}
	r.done = max(r.done, base)
	r.report()
	return func(n int64) {
		r.done = min(r.done+n, r.total)
		if r.done-r.last >= max(r.total/100, 1) || r.done == r.total {
			r.report()
		}
	}
}

func (r *byteReporter) report() {
	if r.done > r.last {
		r.last = r.done
		r.fn(float64(r.done), float64(r.total))
	}
}

// finish reports the end (a link skipped the copy's bytes).
func (r *byteReporter) finish() {
	if r.fn != nil && r.total > 0 {
		r.done = r.total
		r.report()
	}
}

// ISOUsers lists the VMs whose CD drive holds the file at path.
func (s *Store) ISOUsers(path string) ([]string, error) {
	names, err := s.Names()
	if err != nil {
		return nil, err
	}
	want, _ := filepath.Abs(path)
	var out []string
	for _, n := range names {
		spec, err := s.Load(n)
		if err != nil || spec.Boot.ISO == "" {
			continue
		}
		if got, _ := filepath.Abs(spec.Boot.ISO); got == want {
			out = append(out, n)
		}
	}
	return out, nil
}

// InsertCDROM puts the ISO at iso into VM name's CD drive. On a running VM
// the medium changes at once (QMP blockdev-change-medium, the guest sees a
// media change); either way the VM's definition keeps it for the next
// start. live reports whether a running VM was changed.
func (s *Store) InsertCDROM(ctx context.Context, name, iso string) (live bool, err error) {
	if err := checkISO(iso); err != nil {
		return false, fmt.Errorf("insert cd into vm %q: %w", name, err)
	}
	path := abs(iso)
	return s.changeCDROM(ctx, name, path, func(m *emulator.Monitor) error { return m.ChangeCDROM(ctx, cdromID, path) })
}

// EjectCDROM empties VM name's CD drive: at once on a running VM (QMP eject,
// forced: a guest that locked the tray is overridden), and in its
// definition.
func (s *Store) EjectCDROM(ctx context.Context, name string) (live bool, err error) {
	return s.changeCDROM(ctx, name, "", func(m *emulator.Monitor) error { return m.Eject(ctx, cdromID) })
}

// cdromID is the device id of the one CD drive every VM gets (config names
// it; the argv builder gives the -device this id, which QMP's
// blockdev-change-medium and eject take).
const cdromID = "cd0"

func (s *Store) changeCDROM(ctx context.Context, name, path string, change func(*emulator.Monitor) error) (bool, error) {
	live := false
	err := s.Update(ctx, name, func(spec *Spec) error { // under the VM lock: a concurrent edit is not lost
		st, err := s.Status(ctx, name)
		if err != nil {
			return err
		}
		live = st.State.Active()
		if live {
			if err := s.withMonitor(ctx, name, change); err != nil {
				return fmt.Errorf("change cd of vm %q: %w", name, err)
			}
		}
		spec.Boot.ISO = path
		return nil
	})
	return live, err
}
