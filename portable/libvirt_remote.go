package portable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"vlab/machine"
)

// RemoteOptions tune ExportTo.
type RemoteOptions struct {
	Pool     string // storage pool that receives the disks; "" = "default"
	Start    bool   // start the domain once it is defined
	Progress machine.ProgressFunc
}

// ExportTo defines stopped VM name as a domain on the libvirt at uri
// (e.g. qemu+ssh://root@host/system) through virsh: its disks, kernel,
// initrd and UEFI variables become volumes of a storage pool there
// (vol-create-as + vol-upload), the domain refers to them by their paths
// there, and with Start it is started. The serial console is logged to
// NAME-serial.log in the pool's folder. Nothing is left on the remote when
// a step fails before the domain is defined.
func ExportTo(ctx context.Context, s *machine.Store, name, uri string, opts RemoteOptions) (res *ExportResult, err error) {
	if uri == "" || strings.HasPrefix(uri, "-") || strings.ContainsAny(uri, " \t\n") {
		return nil, fmt.Errorf("export %q: libvirt URI %q is invalid: give one like qemu+ssh://root@host/system", name, uri)
	}
	pool := opts.Pool
	if pool == "" {
		pool = "default"
	}
	bin, err := exec.LookPath("virsh")
	if err != nil {
		return nil, fmt.Errorf("export %q: virsh not found (install it: apt-get install libvirt-clients)", name)
	}
	v := virsh{bin: bin, uri: uri}
	spec, err := stoppedSpec(ctx, s, name)
	if err != nil {
		return nil, err
	}
	rx := remoteExport{v: v, name: name, uri: uri, pool: pool}
	if err := rx.check(ctx); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "vlab-export-")
	if err != nil {
		return nil, fmt.Errorf("export %q: %w", name, err)
	}
	defer os.RemoveAll(work)
	st, err := stageLibvirt(ctx, s, spec, work, opts.Progress)
	if err != nil {
		return nil, err
	}
	local := []string{}
	local = append(local, st.files.Disks...)
	for _, f := range []string{st.files.Kernel, st.files.Initrd, st.files.DTB, st.files.NVRAM} {
		if f != "" {
			local = append(local, f)
		}
	}
	defined := false
	defer func() {
		if err != nil && !defined {
			rx.deleteVolumes(context.WithoutCancel(ctx))
		}
	}()
	remote, err := rx.upload(ctx, work, local)
	if err != nil {
		return nil, err
	}
	files := st.files.rebase(func(f string) string { return remote[f] })
	if len(files.Disks) > 0 {
		files.SerialLog = filepath.Join(filepath.Dir(files.Disks[0]), name+"-serial.log")
	}
	d, notes := libvirtDomain(spec, st.cfg, st.r, files)
	if st.r.UEFI {
		notes = append(notes, "the UEFI code is named by this host's path "+st.r.UEFICode+" (the remote needs the same firmware package)")
	}
	if len(files.Disks) == 0 {
		notes = append(notes, "the serial console is not logged (no pool folder to log into)")
	}
	data, err := marshalDomain(d)
	if err != nil {
		return nil, err
	}
	xmlFile := filepath.Join(work, name+".xml")
	if err := os.WriteFile(xmlFile, data, 0o600); err != nil {
		return nil, err
	}
	if _, err := v.run(ctx, "define", "--file", xmlFile); err != nil {
		return nil, fmt.Errorf("export %q: define it on %s: %w", name, uri, err)
	}
	defined = true
	res = &ExportResult{Path: uri, Disks: st.disks, Notes: notes}
	if opts.Start {
		if _, err := v.run(ctx, "start", "--domain", name); err != nil {
			return res, fmt.Errorf("export %q: defined on %s, but it did not start: %w (see virsh -c %s start %s)", name, uri, err, uri, name)
		}
	}
	return res, nil
}

// virsh runs virsh against one libvirt.
type virsh struct{ bin, uri string }

// run runs `virsh -c URI args...` and returns its output; an error carries
// virsh's own message on one line.
func (v virsh) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, v.bin, append([]string{"-q", "-c", v.uri}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.Join(strings.Fields(strings.TrimPrefix(strings.TrimSpace(stderr.String()), "error: ")), " ")
		if msg == "" {
			msg = err.Error()
		}
		return "", errors.New(msg)
	}
	return stdout.String(), nil
}

// remoteExport is one ExportTo: the libvirt it talks to through virsh, the
// pool that receives the VM's files and the volumes it created there.
type remoteExport struct {
	v               virsh
	name, uri, pool string
	created         []string
}

// check makes sure the libvirt answers, has no domain of the VM's name yet
// and has the pool.
func (rx *remoteExport) check(ctx context.Context) error {
	name, uri, pool := rx.name, rx.uri, rx.pool
	if _, err := rx.v.run(ctx, "uri"); err != nil {
		return fmt.Errorf("export %q: cannot reach libvirt at %s: %v: check the URI, ssh access and that libvirtd runs there", name, uri, err)
	}
	if _, err := rx.v.run(ctx, "dominfo", "--domain", name); err == nil {
		return fmt.Errorf("export %q: %s already has a domain %s: undefine it there or export a VM of another name", name, uri, name)
	}
	if _, err := rx.v.run(ctx, "pool-info", "--pool", pool); err != nil {
		return fmt.Errorf("export %q: no storage pool %s on %s (%v): create it there (virsh pool-define-as %s dir --target DIR; virsh pool-start %s) or name one with --pool", name, pool, uri, err, pool, pool)
	}
	return nil
}

// upload makes each file of work a volume of the pool (none may exist
// already) and returns the volumes' paths on the remote by file name.
func (rx *remoteExport) upload(ctx context.Context, work string, files []string) (map[string]string, error) {
	name, uri, pool := rx.name, rx.uri, rx.pool
	for _, f := range files {
		if _, err := rx.v.run(ctx, "vol-info", "--pool", pool, "--vol", f); err == nil {
			return nil, fmt.Errorf("export %q: pool %s on %s already has a volume %s: delete it there (virsh vol-delete --pool %s %s)", name, pool, uri, f, pool, f)
		}
	}
	remote := map[string]string{}
	for _, f := range files {
		fi, err := os.Stat(filepath.Join(work, f))
		if err != nil {
			return nil, err
		}
		if _, err := rx.v.run(ctx, "vol-create-as", "--pool", pool, "--name", f, "--capacity", strconv.FormatInt(fi.Size(), 10), "--format", "raw"); err != nil {
			return nil, fmt.Errorf("export %q: create volume %s in pool %s on %s: %w", name, f, pool, uri, err)
		}
		rx.created = append(rx.created, f)
		if _, err := rx.v.run(ctx, "vol-upload", "--pool", pool, "--vol", f, "--file", filepath.Join(work, f)); err != nil {
			return nil, fmt.Errorf("export %q: upload %s to pool %s on %s: %w", name, f, pool, uri, err)
		}
		p, err := rx.v.run(ctx, "vol-path", "--pool", pool, "--vol", f)
		if err != nil {
			return nil, fmt.Errorf("export %q: path of volume %s on %s: %w", name, f, uri, err)
		}
		remote[f] = strings.TrimSpace(p)
	}
	return remote, nil
}

// deleteVolumes removes the volumes this export created.
func (rx *remoteExport) deleteVolumes(ctx context.Context) {
	for _, f := range rx.created {
		rx.v.run(ctx, "vol-delete", "--pool", rx.pool, "--vol", f)
	}
}
