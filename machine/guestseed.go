package machine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"vlab/emulator"
	"vlab/internal/lazyre"
)

// Files of the guest workflow (vlab ssh/exec/cp) in a VM's folder and in
// vlab's config folder.
const (
	guestFile      = "guest.json"       // login user and host key of a VM made from a cloud image
	knownHostsFile = "known_hosts"      // the VM's SSH host key, learnt from its seed
	hostKeyFile    = "ssh_host_ed25519" // the host key vlab gave the guest (seed only)
	sshDirName     = "ssh"              // config/ssh: vlab's own client key
	clientKeyFile  = "id_ed25519"
	DefaultUser    = "vlab"
)

// GuestInfo is what vlab knows about logging in to a VM it made from a
// cloud image (guest.json in the VM folder).
type GuestInfo struct {
	User string `json:"user"`
}

var userRE = lazyre.New(`^[a-z_][a-z0-9_-]{0,31}$`)

// ValidateUser checks a guest login name.
func ValidateUser(u string) error {
	if !userRE().MatchString(u) {
		return fmt.Errorf("user %q: use lower-case letters, digits, '_' or '-' (at most 32, starting with a letter)", u)
	}
	return nil
}

// hostAlias is the name the VM's host key is kept under: forwards move
// between ports, the key stays the VM's.
func hostAlias(name string) string { return "vlab-" + name }

// ClientKey returns vlab's own SSH key (private key path and public key
// line), generating it in the config folder (0600, folder 0700) the first
// time.
func (s *Store) ClientKey(ctx context.Context) (string, string, error) {
	dir := filepath.Join(s.dirs.Config, sshDirName)
	if err := ensurePrivateDir(s.dirs.Config); err != nil {
		return "", "", fmt.Errorf("ssh key: %w", err)
	}
	if err := ensurePrivateDir(dir); err != nil {
		return "", "", fmt.Errorf("ssh key: %w", err)
	}
	key := filepath.Join(dir, clientKeyFile)
	if _, err := os.Stat(key + ".pub"); err != nil {
		lk, err := lock(ctx, filepath.Join(dir, ".keygen.lock"))
		if err != nil {
			return "", "", fmt.Errorf("ssh key: %w", err)
		}
		defer lk.unlock()
		if _, err := os.Stat(key + ".pub"); err != nil {
			if err := keygen(ctx, key, "vlab"); err != nil {
				return "", "", err
			}
		}
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return "", "", fmt.Errorf("ssh key: %w", err)
	}
	return key, strings.TrimSpace(string(pub)), nil
}

// keygen makes an ed25519 key pair at path and path.pub with ssh-keygen
// (argv, no shell); the pair appears atomically.
func keygen(ctx context.Context, path, comment string) error {
	bin, err := exec.LookPath("ssh-keygen")
	if err != nil {
		return errors.New("ssh-keygen not found: install openssh-client (apt-get install openssh-client)")
	}
	tmp := path + ".new"
	os.Remove(tmp)
	os.Remove(tmp + ".pub")
	out, err := exec.CommandContext(ctx, bin, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", tmp).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ssh-keygen %s: %v: %s", path, err, oneLine(string(out)))
	}
	for _, f := range []string{tmp, tmp + ".pub"} {
		if err := os.Chmod(f, 0o600); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp+".pub", path+".pub.tmp"); err != nil {
		return err
	}
	if err := renameDurable(tmp, path); err != nil {
		return err
	}
	return renameDurable(path+".pub.tmp", path+".pub")
}

// UserKeys returns the public keys in ~/.ssh/*.pub (one line each).
func UserKeys() []string {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(home, ".ssh", "*.pub"))
	var keys []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || len(b) > 16<<10 {
			continue
		}
		k := strings.TrimSpace(string(b))
		if !strings.ContainsAny(k, "\n\r") && (strings.HasPrefix(k, "ssh-") || strings.HasPrefix(k, "ecdsa-") || strings.HasPrefix(k, "sk-")) {
			keys = append(keys, k)
		}
	}
	return keys
}

// SeedOptions is what vlab writes into a cloud image's NoCloud seed.
type SeedOptions struct {
	User     string
	Keys     []string // authorized public keys
	HostKey  string   // private ed25519 host key (OpenSSH format)
	HostPub  string   // its public line
	Shares   []Share  // mounted at /mnt/TAG (or their Mount)
	UserData []byte   // the user's own --cloud-init, merged after vlab's
}

// j quotes s for YAML (a JSON string is a YAML flow scalar).
func j(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// cloudConfig builds vlab's #cloud-config: the user with the keys and
// passwordless sudo, no password logins, the given host key, the mounts.
func cloudConfig(o SeedOptions) []byte {
	var b bytes.Buffer
	b.WriteString("#cloud-config\n")
	b.WriteString("ssh_pwauth: false\ndisable_root: true\n")
	fmt.Fprintf(&b, "users:\n  - name: %s\n    shell: /bin/bash\n    lock_passwd: true\n    sudo: %s\n    ssh_authorized_keys:\n", j(o.User), j("ALL=(ALL) NOPASSWD:ALL"))
	for _, k := range o.Keys {
		fmt.Fprintf(&b, "      - %s\n", j(k))
	}
	if o.HostKey != "" {
		b.WriteString("ssh_deletekeys: true\nssh_keys:\n")
		fmt.Fprintf(&b, "  ed25519_private: %s\n  ed25519_public: %s\n", j(o.HostKey), j(o.HostPub))
	}
	// Every boot mounts the shares the VM has then (read from fw_cfg, so
	// shares added later with `vlab edit --share` mount too; the list of
	// create time where the board has no fw_cfg).
	var static strings.Builder
	for _, sh := range o.Shares {
		mode := "rw"
		if sh.ReadOnly {
			mode = "ro"
		}
		fmt.Fprintf(&static, "%s auto %s %s\n", sh.Tag, mode, sh.GuestPath())
	}
	b.WriteString("bootcmd:\n")
	fmt.Fprintf(&b, "  - [sh, -c, %s, vlab-shares, %s, %s]\n", j(shareMountScript), j(static.String()), j(sharesFwCfgPath))
	return b.Bytes()
}

// sharesFwCfgPath is where a Linux guest reads emulator.SharesFwCfg.
const sharesFwCfgPath = "/sys/firmware/qemu_fw_cfg/by_name/" + emulator.SharesFwCfg + "/raw"

// shareMountScript mounts the shares listed one per line as "TAG KIND
// ro|rw MOUNTPOINT" in the file $2 (fw_cfg), or else in $1 (the list of
// create time, kind "auto": virtiofs, else 9p); a mount point in use is
// left alone.
const shareMountScript = `modprobe -q qemu_fw_cfg 2>/dev/null
if [ -r "$2" ]; then list=$(cat "$2"); else list=$1; fi
printf '%s\n' "$list" | while read -r tag kind mode dir; do
  [ -n "$dir" ] || continue
  mkdir -p "$dir" || continue
  mountpoint -q "$dir" && continue
  case $kind in
  virtiofs) mount -t virtiofs -o "$mode" "$tag" "$dir" ;;
  9p) mount -t 9p -o "trans=virtio,version=9p2000.L,msize=262144,$mode" "$tag" "$dir" ;;
  *) mount -t virtiofs -o "$mode" "$tag" "$dir" || mount -t 9p -o "trans=virtio,version=9p2000.L,msize=262144,$mode" "$tag" "$dir" ;;
  esac
done
exit 0`

// userData returns the seed's user-data: vlab's cloud-config alone, or a
// MIME multipart of it and the user's own user-data (cloud-init merges the
// parts in order: lists such as users and runcmd are appended, and where
// both set one value vlab's is kept, so the login vlab ssh uses works).
func (o SeedOptions) userData() ([]byte, error) {
	vl := cloudConfig(o)
	if len(o.UserData) == 0 {
		return vl, nil
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	ct := func(d []byte) string {
		switch {
		case bytes.HasPrefix(d, []byte("#cloud-config")):
			return "text/cloud-config"
		case bytes.HasPrefix(d, []byte("#!")):
			return "text/x-shellscript"
		case bytes.HasPrefix(d, []byte("#cloud-boothook")):
			return "text/cloud-boothook"
		}
		return "text/x-include-url"
	}
	for i, d := range [][]byte{vl, o.UserData} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", ct(d)+`; charset="utf-8"`)
		h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="part-%d"`, i))
		h.Set("Merge-Type", "dict(recurse_array,no_replace)+list(append)")
		w, err := mw.CreatePart(h)
		if err != nil {
			return nil, err
		}
		w.Write(d)
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	head := fmt.Sprintf("Content-Type: multipart/mixed; boundary=%q\nMIME-Version: 1.0\n\n", mw.Boundary())
	return append([]byte(head), body.Bytes()...), nil
}
