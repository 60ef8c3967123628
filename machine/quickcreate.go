package machine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ImageCreate is what `vlab create NAME --image SOURCE` adds to a new VM.
type ImageCreate struct {
	Image    string // a local image file (downloaded ones come from the cache)
	Format   string // "" = detect (raw is never guessed from content alone)
	Disk     Size   // grow the VM's copy to this size; 0 keeps the image's
	User     string // login; default DefaultUser
	UserData []byte // the user's own --cloud-init, merged into vlab's
	Progress ProgressFunc
}

// ResolveImage turns --image SOURCE into a local file: a gallery id (of
// kind cloud, for arch) or an http(s) URL is downloaded into the cache once
// (resumed, verified), a local path is used as it is. sha256 checks a URL's
// download ("" records whatever arrives). The second result names the
// gallery entry when SOURCE was one.
func (s *Store) ResolveImage(ctx context.Context, source, arch, sha256 string, opts FetchOptions) (string, *GalleryEntry, error) {
	if u, err := url.Parse(source); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		lib := &ISOLibrary{Dir: filepath.Join(s.dirs.Cache, imagesDirName)}
		name := "url-" + path.Base(u.Path)
		if sha256 != "" {
			name = sha256[:12] + "-" + path.Base(u.Path)
		}
		got, err := lib.Download(ctx, source, GetOptions{Name: name, SHA256: sha256, Progress: opts.Progress, Client: opts.Client})
		if err != nil {
			return "", nil, err
		}
		return got.Path, nil, nil
	}
	// A path, or an existing file; otherwise a gallery id, which may hold
	// dots (ubuntu-24.04).
	if strings.Contains(source, "/") || fileExists(source) {
		if _, err := os.Stat(source); err != nil {
			return "", nil, fmt.Errorf("image %s: %w: give a gallery id (`vlab gallery`), a URL or an image file", source, err)
		}
		return source, nil, nil
	}
	g, err := s.Gallery()
	if err != nil {
		return "", nil, err
	}
	e, err := g.Find(source, arch)
	if err != nil {
		if ext := path.Ext(source); ext != "" && strings.Trim(ext[1:], "0123456789") != "" {
			// "disk.qcow2": a file that is not there rather than an id.
			return "", nil, galleryMiss{fmt.Sprintf("image %s: no such file, and no gallery id either: check the path (or `vlab gallery` for ids)", source)}
		}
		return "", nil, err
	}
	if e.Kind != KindCloud {
		return "", nil, galleryMiss{fmt.Sprintf("gallery: %s is an installer ISO, not a cloud image: use --os %s", e.ID, e.ID)}
	}
	p, err := s.FetchGallery(ctx, e, opts)
	return p, &e, err
}

// CreateFromImage creates VM spec with a copy of a cloud image as its disk
// (inspected first: an image pointing at host files is refused), grown to
// o.Disk, and a NoCloud seed with the login user, vlab's and the user's
// SSH keys, a host key vlab generated (so `vlab ssh` knows it without
// asking), hostname = name, and the shares' mounts. On any failure the VM
// is deleted again.
func (s *Store) CreateFromImage(ctx context.Context, spec *Spec, o ImageCreate) (err error) {
	if o.User == "" {
		o.User = DefaultUser
	}
	if err := ValidateUser(o.User); err != nil {
		return fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	if err := CheckShares(spec.Shares); err != nil {
		return fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	if len(o.UserData) > 0 {
		if err := (CloudInit{UserData: o.UserData}).Validate(); err != nil {
			return fmt.Errorf("create vm %q: %w", spec.Name, err)
		}
	}
	qimg, err := s.qemuImg(ctx)
	if err != nil {
		return fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	img, err := InspectImage(ctx, qimg, o.Image, o.Format)
	if err != nil {
		return fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	if o.Disk > 0 && int64(o.Disk) < img.VirtualSize {
		return fmt.Errorf("create vm %q: --disk %s is smaller than the image (%s): give at least that", spec.Name, o.Disk, Size(img.VirtualSize))
	}
	_, clientPub, err := s.ClientKey(ctx)
	if err != nil {
		return fmt.Errorf("create vm %q: %w", spec.Name, err)
	}
	if err := s.Create(ctx, spec); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = s.Delete(context.WithoutCancel(ctx), spec.Name)
		}
	}()
	d, err := s.DiskImport(ctx, spec.Name, o.Image, ImportOptions{Format: img.Format, Progress: o.Progress})
	if err != nil {
		return err
	}
	if o.Disk > d.Size {
		if err := s.DiskResize(ctx, spec.Name, d.File, o.Disk); err != nil {
			return err
		}
	}
	hostKey, pubLine, err := s.makeHostKey(ctx, spec.Name)
	if err != nil {
		return err
	}
	keys := append([]string{clientPub}, UserKeys()...)
	so := SeedOptions{User: o.User, Keys: keys, HostKey: hostKey, HostPub: pubLine, Shares: spec.Shares, UserData: o.UserData}
	ud, err := so.userData()
	if err != nil {
		return fmt.Errorf("create vm %q: user-data: %w", spec.Name, err)
	}
	if err := s.SetCloudInit(ctx, spec.Name, CloudInit{UserData: ud}); err != nil {
		return err
	}
	return s.writeGuestInfo(spec.Name, GuestInfo{User: o.User})
}

// makeHostKey generates the SSH host key the guest of VM name will use,
// records its public half in the VM's known_hosts (so `vlab ssh` knows it
// without asking) and returns the private key and the public line. The
// private key lives on in the cloud-init seed only (0600, in the VM folder).
func (s *Store) makeHostKey(ctx context.Context, name string) (priv, pubLine string, err error) {
	p := s.Paths(name)
	keyPath := filepath.Join(p.Dir, hostKeyFile)
	if err := keygen(ctx, keyPath, hostAlias(name)); err != nil {
		return "", "", fmt.Errorf("create vm %q: host key: %w", name, err)
	}
	defer os.Remove(keyPath)
	defer os.Remove(keyPath + ".pub")
	hostKey, err := os.ReadFile(keyPath)
	if err != nil {
		return "", "", fmt.Errorf("create vm %q: %w", name, err)
	}
	hostPub, err := os.ReadFile(keyPath + ".pub")
	if err != nil {
		return "", "", fmt.Errorf("create vm %q: %w", name, err)
	}
	pubLine = strings.TrimSpace(string(hostPub))
	if f := strings.Fields(pubLine); len(f) >= 2 {
		pubLine = f[0] + " " + f[1]
	}
	if err := writeFileAtomic(filepath.Join(p.Dir, knownHostsFile), []byte(hostAlias(name)+" "+pubLine+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return string(hostKey), pubLine, nil
}

func (s *Store) writeGuestInfo(name string, gi GuestInfo) error {
	data, err := json.MarshalIndent(gi, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.Paths(name).Dir, guestFile), append(data, '\n'), 0o600)
}

// GuestInfoOf returns what vlab knows about logging in to VM name; a VM not
// made from a cloud image gets the default user and no known host key.
func (s *Store) GuestInfoOf(name string) (GuestInfo, bool) {
	data, err := os.ReadFile(filepath.Join(s.Paths(name).Dir, guestFile))
	if err != nil {
		return GuestInfo{User: DefaultUser}, false
	}
	var gi GuestInfo
	if json.Unmarshal(data, &gi) != nil || ValidateUser(gi.User) != nil {
		return GuestInfo{User: DefaultUser}, false
	}
	return gi, true
}

// ErrNoSSH is returned when a VM has no SSH forward to connect through.
var ErrNoSSH = errors.New("no ssh forward")
