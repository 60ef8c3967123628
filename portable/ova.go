package portable

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"vlab/internal/lazyre"
)

// maxDescriptor bounds what is read of a descriptor or manifest.
const maxDescriptor = 16 << 20

// Package is an opened OVF package: an OVA archive or an OVF descriptor
// with its files beside it. Open verified it.
type Package struct {
	Path       string // the .ova or .ovf file
	OVA        bool
	Descriptor string // the descriptor's name in the package
	Env        *Envelope
	// Manifest names the manifest that was verified ("" = none: the files
	// were not checked, which Notes says).
	Manifest string
	Notes    []string // what was not used (certificates, stray files)
	members  map[string]member

	mf         []byte            // the manifest, verified by Verify
	algs       map[string]string // file → digest algorithm, from mf
	verifyOnce sync.Once
	verifyErr  error
}

// member is where a file of the package lies: size bytes at offset of the
// file at path.
type member struct {
	path   string
	offset int64
	size   int64
	sums   map[string]string // algorithm → hex digest of its bytes
}

// Open reads the package at path (.ova, or .ovf with its files beside it),
// checks that every member is a plain file inside the package, parses the
// descriptor, and verifies the manifest's digests and every file the
// descriptor references. It creates nothing.
func Open(path string) (*Package, error) {
	p, err := open(path, false)
	if err != nil {
		return nil, err
	}
	if err := p.Verify(); err != nil {
		return nil, err
	}
	return p, nil
}

// OpenUnverified is Open without reading the disks of an OVA: their
// digests are checked by Verify, which Import runs while it converts them
// into a temporary folder (the whole package is read once, beside the
// conversion, instead of before it). Names, links, references, the
// descriptor and the manifest's own form are checked here as in Open.
func OpenUnverified(path string) (*Package, error) { return open(path, true) }

// Verify checks the manifest's digests, hashing the members the opening
// skipped. It is safe to call more than once.
func (p *Package) Verify() error {
	p.verifyOnce.Do(func() {
		if p.mf == nil {
			return
		}
		for name, m := range p.members {
			if m.sums != nil {
				continue
			}
			hs := hashersFor(p.algs, name)
			f, err := os.Open(m.path)
			if err != nil {
				p.verifyErr = fmt.Errorf("package %s: %w", p.Path, err)
				return
			}
			n, err := io.Copy(multiHash(hs), io.NewSectionReader(f, m.offset, m.size))
			f.Close()
			if err == nil && n != m.size {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				p.verifyErr = fmt.Errorf("package %s is truncated (%q cut off: %v): download it again", p.Path, name, err)
				return
			}
			m.sums = sums(hs)
			p.members[name] = m
		}
		if err := p.verify(p.mf); err != nil {
			p.verifyErr = fmt.Errorf("package %s: %w", p.Path, err)
		}
	})
	return p.verifyErr
}

func open(path string, lazy bool) (*Package, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("package %s does not exist: check the path", path)
		}
		return nil, fmt.Errorf("package %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("package %s is not a file: give the .ova or .ovf file", path)
	}
	p := &Package{Path: path, members: map[string]member{}}
	var desc, mf []byte
	if strings.EqualFold(filepath.Ext(path), ".ovf") {
		desc, mf, err = p.readDir()
	} else {
		p.OVA = true
		desc, mf, err = p.readTar(lazy)
	}
	if err != nil {
		return nil, err
	}
	if p.Env, err = ParseEnvelope(desc); err != nil {
		return nil, fmt.Errorf("package %s: %w", path, err)
	}
	if err := p.checkReferences(); err != nil {
		return nil, fmt.Errorf("package %s: %w", path, err)
	}
	if mf == nil {
		p.Notes = append(p.Notes, "no manifest: file digests not checked")
		return p, nil
	}
	p.mf, p.algs = mf, manifestAlgs(mf)
	return p, nil
}

// countReader counts the bytes read through it, so a tar member's data
// offset is known when Next returns.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// readTar indexes and hashes the members of the OVA, refusing anything but
// plain files with plain names, and returns the descriptor and manifest.
// With lazy set, members other than the descriptor and manifest are
// skipped (seeked over) rather than hashed: Verify hashes them later.
func (p *Package) readTar(lazy bool) (desc, mf []byte, err error) {
	f, err := os.Open(p.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("package %s: %w", p.Path, err)
	}
	defer f.Close()
	// The bufio layer reads ahead: offsets come from what tar consumed,
	// counted above it. Lazily, tar reads the file itself and seeks over
	// the members' data: offsets come from the file's position.
	cr := &countReader{r: bufio.NewReaderSize(f, 1<<20)}
	tr := tar.NewReader(cr)
	offset := func() int64 { return cr.n }
	if lazy {
		tr = tar.NewReader(f)
		offset = func() int64 { n, _ := f.Seek(0, io.SeekCurrent); return n }
	}
	var algs map[string]string // file → algorithm, once the manifest is read
	for first := true; ; first = false {
		hdr, err := tr.Next()
		if err == io.EOF {
			if first {
				return nil, nil, fmt.Errorf("package %s is empty: not an OVA", p.Path)
			}
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("package %s is truncated or not a tar archive (%v): download it again", p.Path, err)
		}
		name, err := memberName(hdr)
		if err != nil {
			return nil, nil, fmt.Errorf("package %s: %w", p.Path, err)
		}
		if _, dup := p.members[name]; dup {
			return nil, nil, fmt.Errorf("package %s holds %q twice: refusing an ambiguous package", p.Path, name)
		}
		if first && !strings.EqualFold(filepath.Ext(name), ".ovf") {
			return nil, nil, fmt.Errorf("package %s starts with %q, not an .ovf descriptor: not an OVA", p.Path, name)
		}
		m := member{path: p.Path, offset: offset(), size: hdr.Size}
		small := first || strings.EqualFold(filepath.Ext(name), ".mf")
		if lazy && !small {
			p.members[name] = m // sums nil: Verify hashes it
			if strings.EqualFold(filepath.Ext(name), ".cert") {
				p.Notes = append(p.Notes, "certificate "+name+" not checked")
			}
			continue
		}
		var buf bytes.Buffer
		hs := hashersFor(algs, name)
		w := io.Writer(multiHash(hs))
		if small {
			if hdr.Size > maxDescriptor {
				return nil, nil, fmt.Errorf("package %s: %q is %d bytes, too large for a descriptor", p.Path, name, hdr.Size)
			}
			w = io.MultiWriter(w, &buf)
		}
		if _, err := io.Copy(w, tr); err != nil {
			return nil, nil, fmt.Errorf("package %s is truncated (%q cut off: %v): download it again", p.Path, name, err)
		}
		m.sums = sums(hs)
		p.members[name] = m
		switch {
		case first:
			desc, p.Descriptor = buf.Bytes(), name
		case small && mf == nil:
			mf, p.Manifest = buf.Bytes(), name
			algs = manifestAlgs(mf)
		default:
			if strings.EqualFold(filepath.Ext(name), ".cert") {
				p.Notes = append(p.Notes, "certificate "+name+" not checked")
			}
		}
	}
	return desc, mf, nil
}

// memberName checks that a tar member is a plain file with a plain name in
// the package's top folder and returns that name.
func memberName(hdr *tar.Header) (string, error) {
	name := strings.TrimPrefix(hdr.Name, "./")
	q := printable(hdr.Name)
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA:
	case tar.TypeSymlink, tar.TypeLink:
		return "", fmt.Errorf("member %q is a link (to %q): refusing a package that points elsewhere", q, printable(hdr.Linkname))
	default:
		return "", fmt.Errorf("member %q is not a plain file (tar type %q): refusing it", q, string(hdr.Typeflag))
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return "", fmt.Errorf("member %q is a sparse tar file: not supported in an OVA", q)
		}
	}
	if name == "" || strings.HasPrefix(hdr.Name, "/") || !filepath.IsLocal(name) || strings.ContainsAny(name, "/\\") {
		return "", fmt.Errorf("member %q leads outside the package folder: refusing it", q)
	}
	return name, nil
}

// readDir reads a descriptor with its files beside it: every referenced
// file must be a plain file (not a link) in the descriptor's folder.
func (p *Package) readDir() (desc, mf []byte, err error) {
	dir := filepath.Dir(p.Path)
	p.Descriptor = filepath.Base(p.Path)
	if desc, err = readSmall(p.Path); err != nil {
		return nil, nil, err
	}
	env, err := ParseEnvelope(desc)
	if err != nil {
		return nil, nil, fmt.Errorf("package %s: %w", p.Path, err)
	}
	mfName := strings.TrimSuffix(p.Descriptor, filepath.Ext(p.Descriptor)) + ".mf"
	if data, err := readSmall(filepath.Join(dir, mfName)); err == nil {
		mf, p.Manifest = data, mfName
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	algs := manifestAlgs(mf)
	names := []string{p.Descriptor}
	for _, r := range env.References {
		names = append(names, r.Href)
	}
	for _, name := range names {
		if _, seen := p.members[name]; seen || !plainHref(name) {
			continue // checkReferences reports a bad href
		}
		m, err := hashFile(filepath.Join(dir, name), hashersFor(algs, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue // checkReferences reports it missing
		}
		if err != nil {
			return nil, nil, fmt.Errorf("package %s: %w", p.Path, err)
		}
		p.members[name] = m
	}
	return desc, mf, nil
}

// readSmall reads a descriptor-sized plain file (not a link).
func readSmall(path string) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a plain file (a link or device): refusing it", path)
	}
	if fi.Size() > maxDescriptor {
		return nil, fmt.Errorf("%s is %d bytes, too large for a descriptor", path, fi.Size())
	}
	return os.ReadFile(path)
}

// hashFile hashes the plain file at path (a link is refused).
func hashFile(path string, hs map[string]hash.Hash) (member, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return member{}, err
	}
	if !fi.Mode().IsRegular() {
		return member{}, fmt.Errorf("%s is not a plain file (a link or device): refusing it", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return member{}, err
	}
	defer f.Close()
	n, err := io.Copy(multiHash(hs), f)
	if err != nil {
		return member{}, fmt.Errorf("read %s: %w", path, err)
	}
	return member{path: path, size: n, sums: sums(hs)}, nil
}

// plainHref reports whether href names a file in the package's own folder.
func plainHref(href string) bool {
	return href != "" && filepath.IsLocal(href) && !strings.ContainsAny(href, "/\\:")
}

// checkReferences checks that every file the descriptor references is a
// plain name of a file the package holds.
func (p *Package) checkReferences() error {
	for _, r := range p.Env.References {
		if !plainHref(r.Href) {
			return fmt.Errorf("file %q is referenced by a path or URL outside the package: refusing it", printable(r.Href))
		}
		if _, ok := p.members[r.Href]; !ok {
			return fmt.Errorf("referenced file %q is missing from the package: it is incomplete", printable(r.Href))
		}
		if r.Compression != "" && r.Compression != "identity" {
			return fmt.Errorf("file %q is %s-compressed: not supported (repack it uncompressed)", printable(r.Href), printable(r.Compression))
		}
		if r.ChunkSize != 0 {
			return fmt.Errorf("file %q is split into chunks: not supported (repack it whole)", printable(r.Href))
		}
	}
	return nil
}

// manifestRE matches a manifest line: ALG(file)= hex.
var manifestRE = lazyre.New(`^\s*(SHA1|SHA256|SHA512)\s*\((.+)\)\s*=\s*([0-9A-Fa-f]+)\s*$`)

// manifestAlgs maps each file of a manifest to its digest algorithm.
func manifestAlgs(mf []byte) map[string]string {
	if mf == nil {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(mf), "\n") {
		if m := manifestRE().FindStringSubmatch(line); m != nil {
			out[m[2]] = m[1]
		}
	}
	return out
}

// verify checks every manifest line against the package's files, and that
// the manifest covers the descriptor and every referenced file.
func (p *Package) verify(mf []byte) error {
	listed := map[string]bool{}
	for i, line := range strings.Split(string(mf), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m := manifestRE().FindStringSubmatch(line)
		if m == nil {
			return fmt.Errorf("manifest line %d is not ALG(file)= digest: the package is damaged", i+1)
		}
		name, want := m[2], strings.ToLower(m[3])
		got, ok := p.members[name]
		if !ok {
			return fmt.Errorf("manifest lists %q, which the package lacks: it is incomplete", printable(name))
		}
		if got.sums[m[1]] != want {
			return fmt.Errorf("%q does not match its %s digest in the manifest: the package is damaged or was altered", printable(name), m[1])
		}
		listed[name] = true
	}
	need := []string{p.Descriptor}
	for _, r := range p.Env.References {
		need = append(need, r.Href)
	}
	for _, n := range need {
		if !listed[n] {
			return fmt.Errorf("manifest does not list %q: refusing an unverified file", printable(n))
		}
	}
	return nil
}

// hashersFor returns the hashes to compute over file name: the algorithm
// the manifest names for it, or every one when the manifest is unknown yet.
func hashersFor(algs map[string]string, name string) map[string]hash.Hash {
	all := map[string]func() hash.Hash{"SHA1": sha1.New, "SHA256": sha256.New, "SHA512": sha512.New}
	if alg, ok := algs[name]; ok {
		return map[string]hash.Hash{alg: all[alg]()}
	}
	if algs != nil {
		return nil // not in the manifest: verify reports it if it matters
	}
	return map[string]hash.Hash{"SHA1": sha1.New(), "SHA256": sha256.New()}
}

func multiHash(hs map[string]hash.Hash) io.Writer {
	ws := []io.Writer{io.Discard}
	for _, h := range hs {
		ws = append(ws, h)
	}
	return io.MultiWriter(ws...)
}

func sums(hs map[string]hash.Hash) map[string]string {
	out := map[string]string{}
	for k, h := range hs {
		out[k] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// printable escapes control characters so a name in an error stays on one line.
func printable(s string) string {
	q := fmt.Sprintf("%+q", s)
	return q[1 : len(q)-1]
}
