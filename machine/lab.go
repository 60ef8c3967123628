package machine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"
)

// Lab is a private network that joins VMs of this user without root: every
// lab NIC is a QEMU dgram netdev on a unix socket, and a small vlab switch
// process per lab forwards Ethernet frames between them (and, with DHCP on,
// leases addresses from Subnet). Nothing reaches the host's interfaces.
type Lab struct {
	Name   string `toml:"name" json:"name"`
	Subnet string `toml:"subnet" json:"subnet"` // IPv4 CIDR, e.g. 10.77.1.0/24; the switch's DHCP serves it
	DHCP   bool   `toml:"dhcp" json:"dhcp"`     // the switch answers DHCP with addresses from Subnet
}

// LabInfo is a lab with what is attached to it now.
type LabInfo struct {
	Lab
	Members []string          `json:"members"`        // VMs with a NIC on the lab
	Switch  bool              `json:"switch_running"` // its switch process runs
	PID     int               `json:"switch_pid,omitempty"`
	Leases  map[string]string `json:"leases,omitempty"` // MAC -> IPv4 from the switch's DHCP
}

// Errors about labs callers branch on.
var (
	ErrLabNotFound = errors.New("no such lab network")
	ErrLabExists   = errors.New("lab network already exists")
	ErrLabInUse    = errors.New("lab network is in use")
)

// MaxLabNameLen bounds lab names.
const MaxLabNameLen = 32

// ValidateLabName checks a lab network name: letters, digits, '.', '_' and
// '-', starting with a letter or digit, at most MaxLabNameLen bytes.
func ValidateLabName(name string) error {
	switch {
	case name == "":
		return errors.New("lab name is empty: use letters, digits, '.', '_' or '-', e.g. lab1")
	case len(name) > MaxLabNameLen:
		return fmt.Errorf("lab name is %d bytes long: use at most %d", len(name), MaxLabNameLen)
	case !nameRE().MatchString(name):
		return fmt.Errorf("lab name %q is invalid: use letters, digits, '.', '_' or '-' and start with a letter or digit, e.g. lab1", printable(name))
	}
	return nil
}

// File names of a lab.
const (
	labDefFile    = "lab.toml"
	labLeasesFile = "leases.json"
	labRunDir     = ".labs" // under the runtime dir; no VM can be called this
	labSocket     = "switch.sock"
	labLock       = "switch.lock"
	labRecord     = "switch.json"
	labConf       = "switch.conf.json"
	labPortsDir   = "ports"
)

// labPaths are the files of one lab.
type labPaths struct {
	Dir    string // data: lab.toml, leases.json
	Def    string
	Leases string
	Run    string // runtime: socket, lock, record, ports registry
	Socket string
	Lock   string
	Record string
	Conf   string
	Ports  string
	Log    string
}

func (s *Store) labPaths(name string) labPaths {
	d := s.dirs
	dir := filepath.Join(d.Data, "labs", name)
	run := filepath.Join(d.Runtime, labRunDir, name)
	if len(filepath.Join(run, labSocket)) > maxSockPath {
		sum := sha256.Sum256([]byte(run))
		run = filepath.Join(os.TempDir(), "vlab-"+strconv.Itoa(os.Getuid()), "lab-"+hex.EncodeToString(sum[:8]))
	}
	return labPaths{
		Dir: dir, Def: filepath.Join(dir, labDefFile), Leases: filepath.Join(dir, labLeasesFile),
		Run: run, Socket: filepath.Join(run, labSocket), Lock: filepath.Join(run, labLock),
		Record: filepath.Join(run, labRecord), Conf: filepath.Join(run, labConf), Ports: filepath.Join(run, labPortsDir),
		Log: filepath.Join(d.State, labRunDir, name+".log"),
	}
}

// labPortSocket is where NIC i of VM vm binds its end of the lab: in the
// VM's runtime dir, whose layout keeps socket paths under the kernel limit.
func (s *Store) labPortSocket(vm string, i int) string {
	return filepath.Join(s.Paths(vm).Run, "lab-"+nicID(i)+".sock")
}

// parseSubnet checks an IPv4 CIDR with room for the switch and a guest.
func parseSubnet(cidr string) (*net.IPNet, error) {
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil || ip.To4() == nil {
		return nil, fmt.Errorf("subnet %q is not an IPv4 CIDR: write e.g. 10.77.1.0/24", cidr)
	}
	ones, _ := n.Mask.Size()
	if ones < 8 || ones > 29 {
		return nil, fmt.Errorf("subnet %q: use a prefix from /8 to /29, e.g. 10.77.1.0/24", cidr)
	}
	if !n.IP.Equal(ip.To4()) {
		return nil, fmt.Errorf("subnet %q has host bits set: write %s", cidr, n)
	}
	return n, nil
}

// LoadLab reads lab name's definition.
func (s *Store) LoadLab(name string) (Lab, error) {
	if err := ValidateLabName(name); err != nil {
		return Lab{}, err
	}
	lp := s.labPaths(name)
	data, err := os.ReadFile(lp.Def)
	if errors.Is(err, fs.ErrNotExist) {
		return Lab{}, fmt.Errorf("lab %q: %w: create it with `vlab net lab create %s`", name, ErrLabNotFound, name)
	}
	if err != nil {
		return Lab{}, fmt.Errorf("load lab %q: %w", name, err)
	}
	var lab Lab
	if _, err := toml.Decode(string(data), &lab); err != nil {
		return Lab{}, fmt.Errorf("lab %q: %s is corrupt (%s): fix it or `vlab net lab rm %s`", name, lp.Def, oneLine(err.Error()), name)
	}
	if lab.Name != name {
		return Lab{}, fmt.Errorf("lab %q: %s names lab %q: make name = %q", name, lp.Def, lab.Name, name)
	}
	if _, err := parseSubnet(lab.Subnet); err != nil {
		return Lab{}, fmt.Errorf("lab %q: %w", name, err)
	}
	return lab, nil
}

// LabNames lists the defined labs, sorted.
func (s *Store) LabNames() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dirs.Data, "labs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list labs: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() && ValidateLabName(e.Name()) == nil {
			if _, err := os.Stat(filepath.Join(s.dirs.Data, "labs", e.Name(), labDefFile)); err == nil {
				names = append(names, e.Name())
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// CreateLab defines a lab network. An empty Subnet gets the first free
// 10.77.N.0/24.
func (s *Store) CreateLab(ctx context.Context, lab Lab) (Lab, error) {
	if err := ValidateLabName(lab.Name); err != nil {
		return Lab{}, fmt.Errorf("create lab: %w", err)
	}
	names, err := s.LabNames()
	if err != nil {
		return Lab{}, err
	}
	if lab.Subnet == "" {
		used := map[string]bool{}
		for _, n := range names {
			if l, err := s.LoadLab(n); err == nil {
				used[l.Subnet] = true
			}
		}
		for i := 1; i < 255 && lab.Subnet == ""; i++ {
			if c := fmt.Sprintf("10.77.%d.0/24", i); !used[c] {
				lab.Subnet = c
			}
		}
		if lab.Subnet == "" {
			return Lab{}, fmt.Errorf("create lab %q: no free 10.77.N.0/24 left: give --subnet", lab.Name)
		}
	}
	if _, err := parseSubnet(lab.Subnet); err != nil {
		return Lab{}, fmt.Errorf("create lab %q: %w", lab.Name, err)
	}
	lp := s.labPaths(lab.Name)
	if err := mkdirPrivate(filepath.Dir(lp.Dir)); err != nil {
		return Lab{}, fmt.Errorf("create lab %q: %w", lab.Name, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(lp.Dir), ".new-"+lab.Name+"-")
	if err != nil {
		return Lab{}, fmt.Errorf("create lab %q: %w", lab.Name, err)
	}
	defer os.RemoveAll(tmp)
	var buf strings.Builder
	buf.WriteString("# vlab lab network. VMs join it with a nic of mode lab (`--nic lab:" + lab.Name + "`).\n")
	if err := toml.NewEncoder(&buf).Encode(lab); err != nil {
		return Lab{}, fmt.Errorf("create lab %q: %w", lab.Name, err)
	}
	if err := writeFileAtomic(filepath.Join(tmp, labDefFile), []byte(buf.String()), 0o600); err != nil {
		return Lab{}, err
	}
	if err := os.Chmod(tmp, privateDirMode); err != nil {
		return Lab{}, fmt.Errorf("create lab %q: %w", lab.Name, err)
	}
	if err := os.Rename(tmp, lp.Dir); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return Lab{}, fmt.Errorf("create lab %q: %w: pick another name or `vlab net lab rm %s` first", lab.Name, ErrLabExists, lab.Name)
		}
		return Lab{}, fmt.Errorf("create lab %q: %w", lab.Name, err)
	}
	return lab, nil
}

// labMembers maps each lab to the VMs with a NIC on it, reading every VM's
// spec once.
func (s *Store) labMembers() (map[string][]string, error) {
	vms, err := s.Names()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, vm := range vms {
		spec, err := s.Load(vm)
		if err != nil {
			continue
		}
		for _, n := range spec.NICs {
			if n.Mode == NetLab && !slices.Contains(out[n.Lab], vm) {
				out[n.Lab] = append(out[n.Lab], vm)
			}
		}
	}
	return out, nil
}

// Labs returns every lab with its members, switch state and leases.
func (s *Store) Labs() ([]LabInfo, error) {
	names, err := s.LabNames()
	if err != nil {
		return nil, err
	}
	members, _ := s.labMembers() // unreadable: labs are listed without members
	out := []LabInfo{}
	for _, n := range names {
		lab, err := s.LoadLab(n)
		if err != nil {
			return nil, err
		}
		out = append(out, s.labInfo(lab, members[n]))
	}
	return out, nil
}

// LabInfo returns one lab with its members, switch state and leases.
func (s *Store) LabInfo(name string) (LabInfo, error) {
	lab, err := s.LoadLab(name)
	if err != nil {
		return LabInfo{}, err
	}
	members, _ := s.labMembers()
	return s.labInfo(lab, members[name]), nil
}

// labInfo adds to lab its members, switch state and leases.
func (s *Store) labInfo(lab Lab, members []string) LabInfo {
	li := LabInfo{Lab: lab, Members: []string{}}
	if members != nil {
		li.Members = members
	}
	li.PID, li.Switch = s.labSwitchPID(lab.Name)
	li.Leases = s.labLeases(lab.Name)
	return li
}

// labSwitchPID reports the pid of lab name's switch, if one runs: a running
// switch holds the lab's lock for its whole life.
func (s *Store) labSwitchPID(name string) (int, bool) {
	lp := s.labPaths(name)
	l, err := tryLock(lp.Lock)
	if err == nil {
		l.unlock()
		return 0, false
	}
	if !errors.Is(err, errLocked) {
		return 0, false
	}
	var rec switchRecord
	_ = readJSON(lp.Record, &rec)
	return rec.PID, true
}

// RemoveLab deletes lab name and stops its switch. A lab some VM still has a
// NIC on is refused (ErrLabInUse) unless force is set.
func (s *Store) RemoveLab(ctx context.Context, name string, force bool) error {
	if _, err := s.LoadLab(name); err != nil {
		return err
	}
	members, err := s.labMembers()
	if err != nil {
		return err
	}
	if len(members[name]) > 0 && !force {
		return fmt.Errorf("remove lab %q: %w by %s: move their nics first (vlab edit VM --nic ...) or use --force", name, ErrLabInUse, strings.Join(members[name], ", "))
	}
	lp := s.labPaths(name)
	if err := os.RemoveAll(lp.Dir); err != nil {
		return fmt.Errorf("remove lab %q: %w", name, err)
	}
	if pid, ok := s.labSwitchPID(name); ok && pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	// The switch also leaves on its own once the definition is gone; wait
	// for it to drop its lock so the runtime dir can go.
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if l, err := lock(lctx, lp.Lock); err == nil {
		l.unlock()
	}
	os.RemoveAll(lp.Run)
	os.Remove(lp.Log)
	return nil
}

// labLeases reads the DHCP leases the switch of lab name handed out.
func (s *Store) labLeases(name string) map[string]string {
	var leases map[string]string
	_ = readJSON(s.labPaths(name).Leases, &leases)
	return leases
}

// labLease returns the address the lab's DHCP leased to mac ("" if none).
func (s *Store) labLease(name, mac string) string {
	return s.labLeases(name)[strings.ToLower(mac)]
}

// LabSwitchCommand returns the argv that runs the switch of a lab with the
// given config file: by default this very program, `vlab net lab serve
// CONF`. Tests replace it.
var LabSwitchCommand = func(conf string) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the vlab binary: %w", err)
	}
	return []string{exe, "net", "lab", "serve", conf}, nil
}

// ensureLabSwitch starts the switch of lab unless one runs, and waits until
// it serves its socket.
func (s *Store) ensureLabSwitch(ctx context.Context, lab Lab) error {
	name := lab.Name
	lp := s.labPaths(name)
	if err := ensurePrivateDir(filepath.Dir(lp.Run)); err != nil {
		return err
	}
	if err := ensurePrivateDir(lp.Run); err != nil {
		return err
	}
	if err := os.MkdirAll(lp.Ports, 0o700); err != nil {
		return fmt.Errorf("lab %q: %w", name, err)
	}
	if _, running := s.labSwitchPID(name); running {
		return nil
	}
	conf := switchConf{Lab: lab, Def: lp.Def, Socket: lp.Socket, Lock: lp.Lock, Record: lp.Record, Ports: lp.Ports, Leases: lp.Leases}
	if err := writeJSON(lp.Conf, conf); err != nil {
		return err
	}
	argv, err := LabSwitchCommand(lp.Conf)
	if err != nil {
		return fmt.Errorf("start switch of lab %q: %w", name, err)
	}
	if err := mkdirPrivate(filepath.Dir(lp.Log)); err != nil {
		return fmt.Errorf("start switch of lab %q: %w", name, err)
	}
	logf, err := os.OpenFile(lp.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start switch of lab %q: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("start switch of lab %q: %w", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if _, running := s.labSwitchPID(name); running {
			if _, err := os.Stat(lp.Socket); err == nil {
				return nil
			}
		}
		select {
		case <-exited:
			// Another start's switch may have won the lock: that is fine.
			if _, running := s.labSwitchPID(name); running {
				continue
			}
			tail, _ := os.ReadFile(lp.Log)
			return fmt.Errorf("start switch of lab %q: it exited: %s (log %s)", name, oneLine(lastLine(string(tail))), lp.Log)
		case <-deadline.C:
			return fmt.Errorf("start switch of lab %q: no socket after 10s (log %s)", name, lp.Log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// registerLabPort tells the switch of lab where NIC i of VM vm receives, so
// broadcasts reach it before it has sent anything, and which MAC that NIC
// has: the switch's DHCP serves only its members' MACs, each from its own
// port.
func (s *Store) registerLabPort(lab, vm string, i int, mac string) error {
	lp := s.labPaths(lab)
	if err := os.MkdirAll(lp.Ports, 0o700); err != nil {
		return fmt.Errorf("lab %q: %w", lab, err)
	}
	if err := ensurePrivateDir(s.Paths(vm).Run); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(lp.Ports, vm+"."+nicID(i)), []byte(s.labPortSocket(vm, i)+"\n"+strings.ToLower(mac)+"\n"), 0o600)
}

// nicMAC is the MAC NIC i of spec has: its own, or the stable one vlab
// derives from the VM's name.
func nicMAC(spec *Spec, i int) string {
	if m := spec.NICs[i].MAC; m != "" {
		return m
	}
	return StableMAC(spec.Name, i)
}
