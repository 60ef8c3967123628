package machine

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"vlab/internal/lazyre"
)

// Copies through the guest agent go through a tar file in the guest's
// /tmp, moved in 1 MiB guest-file-read/-write chunks: guest-exec's
// input-data and out-data travel in one JSON message each and QEMU 7.2's
// agent keeps at most 16 MiB of output, so the file is what makes any size
// work. tar runs in the guest as the login user (so files get that user's
// ownership and relative paths start in its home, as with scp); the host
// side builds and extracts the archive with archive/tar.
//
// The guest is untrusted: extraction writes only below what the user
// named, refuses entries outside the one top-level name it asked for
// ("..", absolute names, other names), never writes through a symlink
// (neither one from the archive nor one already there), and goes through
// an os.Root so nothing it does resolves outside the destination folder.

const (
	// guestTmpTemplate is the mktemp template of the guest-side tar file.
	guestTmpTemplate = "/tmp/vlab-cp.XXXXXXXXXX"
	// maxCopyEntries bounds the entries one copy from the guest may have.
	maxCopyEntries = 1 << 20
	// agentIOTimeout bounds one chunk's read or write.
	agentIOTimeout = time.Minute
)

var guestTmpRE = lazyre.New(`^/tmp/vlab-cp\.[A-Za-z0-9]{10}$`)

// copyInScript extracts $2 (whose single top-level entry is $3) to $1 as
// scp -r would: into $1 when it is a folder, else as $1.
const copyInScript = `dst=$1 tarf=$2 top=$3
if [ -d "$dst" ]; then exec tar -x --no-same-owner -f "$tarf" -C "$dst"; fi
case $dst in */) echo "$dst: no such folder" >&2; exit 1;; esac
t=$(mktemp -d "$(dirname -- "$dst")/.vlab-cp.XXXXXXXXXX") || exit 1
tar -x --no-same-owner -f "$tarf" -C "$t" && mv -f -- "$t/$top" "$dst"
rc=$?
rm -rf -- "$t"
exit $rc`

// copyOutScript archives $1 (a file or folder) into $2.
const copyOutScript = `src=$1 t=$2
[ -e "$src" ] || [ -L "$src" ] || { echo "$src: no such file or folder" >&2; exit 2; }
d=$(dirname -- "$src") b=$(basename -- "$src")
cd -- "$d" && exec tar -c -f "$t" -- "$b"`

// topName is the name a copied path's archive starts with.
func topName(p string) (string, error) {
	b := path.Base(path.Clean(filepath.ToSlash(p)))
	if b == "/" || b == "." || b == ".." || b == "" {
		return "", fmt.Errorf("cp: %q does not name a file or folder: name it (e.g. dir/sub, not dir/.)", p)
	}
	return b, nil
}

// guestTemp makes an empty tar file in the guest (owned by user) and
// returns its path and a function removing it again.
func (c *agentConn) guestTemp(ctx context.Context, user string) (string, func(), error) {
	r, err := c.runOK(ctx, user, []string{"mktemp", guestTmpTemplate}, nil)
	if err != nil {
		return "", nil, fmt.Errorf("cp: temporary file in the guest: %w", err)
	}
	tmp := strings.TrimSpace(string(r.Stdout))
	if !guestTmpRE().MatchString(tmp) {
		return "", nil, fmt.Errorf("cp: the guest's mktemp answered %q, not a %s path", clipText(tmp, 80), guestTmpTemplate)
	}
	return tmp, func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), agentCallTimeout)
		defer cancel()
		_, _ = c.run(rctx, user, []string{"rm", "-f", "--", tmp}, nil)
	}, nil
}

// AgentCopyIn copies host file or folder src to dst in running VM name
// (as scp -r: into dst when it is a folder, else as dst), as user ("" =
// the VM's login user).
func (s *Store) AgentCopyIn(ctx context.Context, name, user, src, dst string) error {
	top, err := topName(src)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(src); err == nil {
		src = real // like scp, a symlink named on the command line is followed
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("cp: %w", err)
	}
	return s.withGuestTemp(ctx, name, user, func(c *agentConn, user, tmp string) error {
		if err := c.upload(ctx, tmp, src, top); err != nil {
			return err
		}
		if _, err := c.runOK(ctx, user, []string{"sh", "-c", copyInScript, "vlab-cp", dst, tmp, top}, nil); err != nil {
			return fmt.Errorf("cp to %s:%s: %w", name, dst, err)
		}
		return nil
	})
}

// withGuestTemp runs fn with a connection to running VM name's guest agent,
// the guest user that copies run as (user, or the VM's own) and a fresh
// temporary file in the guest, which is removed afterwards.
func (s *Store) withGuestTemp(ctx context.Context, name, user string, fn func(c *agentConn, user, tmp string) error) error {
	user, err := s.guestUser(name, user)
	if err != nil {
		return err
	}
	c, err := s.agent(ctx, name)
	if err != nil {
		return err
	}
	defer c.close()
	tmp, remove, err := c.guestTemp(ctx, user)
	if err != nil {
		return err
	}
	defer remove()
	return fn(c, user, tmp)
}

// upload streams a tar of src into the guest file tmp.
func (c *agentConn) upload(ctx context.Context, tmp, src, top string) error {
	octx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	h, err := c.FileOpen(octx, tmp, "r+") // r+: no O_CREAT, which fs.protected_regular refuses root in /tmp
	cancel()
	if err != nil {
		return fmt.Errorf("cp: open %s in the guest: %w", tmp, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), agentCallTimeout)
		defer cancel()
		_ = c.FileClose(cctx, h)
	}()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, src, top)) }()
	defer pr.Close()
	buf := make([]byte, 1<<20)
	for {
		n, rerr := io.ReadFull(pr, buf)
		if n > 0 {
			wctx, cancel := context.WithTimeout(ctx, agentIOTimeout)
			err := c.FileWrite(wctx, h, buf[:n])
			cancel()
			if err != nil {
				return fmt.Errorf("cp: write %s in the guest: %w", tmp, err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("cp: %w", rerr)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	return c.FileClose(cctx, h)
}

// writeTar archives src as top (a folder's contents below top/). Symlinks
// inside are archived as symlinks; sockets, devices and pipes are left out.
func writeTar(w io.Writer, src, top string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := top
		if rel != "." {
			name = top + "/" + filepath.ToSlash(rel)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		switch {
		case info.Mode().IsRegular(), info.IsDir():
		case info.Mode()&fs.ModeSymlink != 0:
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return nil
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, info.Size()); err != nil {
			return fmt.Errorf("%s: %w (did it change while being copied?)", p, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// AgentCopyOut copies file or folder src in running VM name to host path
// dst (as scp -r: into dst when it is a folder, else as dst), reading as
// user ("" = the VM's login user).
func (s *Store) AgentCopyOut(ctx context.Context, name, user, src, dst string) error {
	top, err := topName(src)
	if err != nil {
		return err
	}
	return s.withGuestTemp(ctx, name, user, func(c *agentConn, user, tmp string) error {
		if _, err := c.runOK(ctx, user, []string{"sh", "-c", copyOutScript, "vlab-cp", src, tmp}, nil); err != nil {
			return fmt.Errorf("cp from %s:%s: %w", name, src, err)
		}
		if err := c.download(ctx, tmp, dst, top); err != nil {
			return fmt.Errorf("cp from %s:%s to %s: %w", name, src, dst, err)
		}
		return nil
	})
}

// download streams the guest's tar file tmp to the host and extracts it to
// dst (entries below top only; see extractTar).
func (c *agentConn) download(ctx context.Context, tmp, dst, top string) error {
	octx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	h, err := c.FileOpen(octx, tmp, "r")
	cancel()
	if err != nil {
		return fmt.Errorf("open %s in the guest: %w", tmp, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), agentCallTimeout)
		defer cancel()
		_ = c.FileClose(cctx, h)
	}()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := extractTar(pr, dst, top)
		pr.CloseWithError(err)
		if err == nil {
			_, _ = io.Copy(io.Discard, pr) // padding after the end marker
		}
		done <- err
	}()
	for {
		rctx, cancel := context.WithTimeout(ctx, agentIOTimeout)
		data, eof, err := c.FileRead(rctx, h, 0)
		cancel()
		if err != nil {
			pw.CloseWithError(err)
			<-done
			return fmt.Errorf("read %s in the guest: %w", tmp, err)
		}
		if _, err := pw.Write(data); err != nil {
			break // the extraction ended: its error says why
		}
		if eof || len(data) == 0 {
			break
		}
	}
	pw.Close()
	return <-done
}

// ErrUnsafeArchive is returned (wrapped) when a copy from a guest holds an
// entry that would land outside what was asked for.
var ErrUnsafeArchive = errors.New("the guest sent an entry outside what was asked for")

// extractTar extracts an archive whose entries all lie below top to host
// path dst: into dst when it is a folder, else as dst.
func extractTar(r io.Reader, dst, top string) error {
	rootDir, name := dst, top
	if fi, err := os.Stat(dst); err != nil || !fi.IsDir() {
		if strings.HasSuffix(dst, "/") {
			return fmt.Errorf("%s: no such folder", dst)
		}
		rootDir, name = filepath.Dir(dst), filepath.Base(dst)
	}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return errors.New("the guest sent an empty archive")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if n >= maxCopyEntries {
			return fmt.Errorf("over %d entries", maxCopyEntries)
		}
		rel, ok := mapEntry(hdr.Name, top, name)
		if !ok {
			return fmt.Errorf("%w: %q", ErrUnsafeArchive, clipText(hdr.Name, 200))
		}
		if err := checkParents(root, rel); err != nil {
			return err
		}
		if err := extractEntry(root, rel, hdr, tr); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(rootDir, rel), err)
		}
	}
}

// mapEntry renames archive entry name (top or top/...) to the same path
// below as; anything else (absolute, "..", another top) is refused.
func mapEntry(name, top, as string) (string, bool) {
	if name == "" || strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) || strings.ContainsRune(name, '\\') {
		return "", false
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", false
		}
	}
	clean := path.Clean(strings.TrimPrefix(name, "./"))
	if clean == top {
		return as, true
	}
	rest, ok := strings.CutPrefix(clean, top+"/")
	if !ok || rest == "" {
		return "", false
	}
	return filepath.Join(as, filepath.FromSlash(rest)), true
}

// checkParents refuses a path one of whose parent folders (below the
// root) is a symlink: nothing is written through a link.
func checkParents(root *os.Root, rel string) error {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for i := 1; i < len(parts); i++ {
		p := filepath.FromSlash(strings.Join(parts[:i], "/"))
		fi, err := root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // created below as a plain folder
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: %s goes through the symlink %s", ErrUnsafeArchive, rel, p)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s: %s is not a folder", rel, p)
		}
	}
	return nil
}

// extractEntry writes one entry at rel (its parents checked). Modes come
// from the guest, so only its owner bits are kept: what vlab writes is
// 0600/0700 (SECURITY.md), and a folder already on the host keeps its own.
func extractEntry(root *os.Root, rel string, hdr *tar.Header, tr *tar.Reader) error {
	if dir := filepath.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	mode := fs.FileMode(hdr.Mode)&0o700 | 0o600
	old, lerr := root.Lstat(rel)
	exists := lerr == nil
	switch hdr.Typeflag {
	case tar.TypeDir:
		if exists && old.IsDir() {
			return nil
		}
		if exists {
			return errors.New("exists and is not a folder")
		}
		return root.Mkdir(rel, 0o700)
	case tar.TypeReg:
		if exists && old.IsDir() {
			return errors.New("is a folder on the host, a file in the guest")
		}
		if exists {
			if err := root.Remove(rel); err != nil { // a symlink there is replaced, not followed
				return err
			}
		}
		f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, tr); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case tar.TypeSymlink:
		if exists && old.IsDir() {
			return errors.New("is a folder on the host, a symlink in the guest")
		}
		if exists {
			if err := root.Remove(rel); err != nil {
				return err
			}
		}
		return root.Symlink(hdr.Linkname, rel)
	default:
		return nil // hard links, devices, pipes: left out, as scp does not copy them either
	}
}
