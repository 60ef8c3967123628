package machine

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"vlab/emulator"
	"vlab/internal/fakeqemu"
	"vlab/internal/fixture"
)

// connectEnv makes the test binary a tiny client: connect to the unix
// socket it names, exit 0 on success and 3 on failure (for the other-user
// test, run through setpriv).
const connectEnv = "VLAB_TEST_UNIX_CONNECT"

// filterEnv makes the test binary run a sandbox filter (its last two
// arguments are the sockets) instead of the tests.
const filterEnv = "VLAB_TEST_SANDBOXFILTER"

// useTestFilter makes vlab start the sandbox filter from this test binary,
// without the fake QEMU's mode in its environment.
func useTestFilter(t *testing.T) {
	t.Helper()
	env, err := exec.LookPath("env")
	if err != nil {
		t.Fatal(err)
	}
	old := SandboxFilterCommand
	SandboxFilterCommand = func(q, p string) ([]string, error) {
		return []string{env, "-u", fakeqemu.EnvMode, filterEnv + "=1", os.Args[0], "-test.run=^$", q, p}, nil
	}
	t.Cleanup(func() { SandboxFilterCommand = old })
}

func init() {
	if os.Getenv(filterEnv) == "1" && len(os.Args) > 2 {
		err := ServeSandboxFilter(context.Background(), os.Args[len(os.Args)-2], os.Args[len(os.Args)-1])
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	if path := os.Getenv(connectEnv); path != "" {
		c, err := net.Dial("unix", path)
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(3)
		}
		c.Close()
		os.Exit(0)
	}
}

func TestParseDefaultRoute(t *testing.T) {
	table := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"br0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"wg0\t00000000\t00000000\t0000\t0\t0\t0\t00000000\t0\t0\t0\n" + // down
		"enp3s0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
	if got := parseDefaultRoute(table); got != "enp3s0" {
		t.Errorf("default route interface %q, want enp3s0", got)
	}
	if got := parseDefaultRoute(strings.SplitN(table, "\n", 2)[0]); got != "" {
		t.Errorf("no default route gave %q", got)
	}
}

func TestSandboxNICSpec(t *testing.T) {
	n, err := ParseNIC("sandbox,model=ne2k_pci")
	if err != nil || n.Mode != emulator.NetSandbox || n.Model != "ne2k_pci" || n.ModeString() != "sandbox" {
		t.Fatalf("ParseNIC(sandbox) = %+v, %v", n, err)
	}
	if _, err := ParseNIC("sandbox:x"); err == nil {
		t.Error("sandbox with an argument parsed")
	}
	spec := NewSpec("dos", emulator.ArchI386)
	spec.NICs = []NICSpec{{Mode: emulator.NetSandbox, Forwards: []Forward{{Proto: "tcp", HostAddr: "127.0.0.1", HostPort: 2222, GuestPort: 22}}}}
	if err := spec.Validate(); err != nil {
		t.Fatalf("a sandbox nic with a forward: %v", err)
	}
	s := emptyStore(t)
	nic, err := s.nicConfig(spec, 0)
	if err != nil {
		t.Fatal(err)
	}
	if nic.Mode != emulator.NetSandbox || nic.Passt != s.Paths("dos").passtSocket(0) || len(nic.Forwards) != 0 {
		t.Errorf("nicConfig: %+v (want passt's socket in the runtime dir and no QEMU forwards)", nic)
	}
	if filepath.Dir(nic.Passt) != s.Paths("dos").Run {
		t.Errorf("passt socket %s is outside the runtime dir", nic.Passt)
	}
}

func TestSandboxWithoutPasst(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeNormal)
	createFake(t, s, "nopasst")
	spec, _ := s.Load("nopasst")
	spec.NICs = []NICSpec{{Mode: emulator.NetSandbox}}
	if err := s.Save(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	old := passtBin
	passtBin = "vlab-test-no-such-passt"
	defer func() { passtBin = old }()
	err := s.Start(context.Background(), "nopasst", StartOptions{})
	if err == nil || !strings.Contains(err.Error(), "apt-get install passt") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("start without passt: %v", err)
	}
	wantState(t, s, "nopasst", StateStopped)
}

// passtOf returns the passt processes recorded for vm.
func passtOf(t *testing.T, s *Store, vm string) []passtProc {
	t.Helper()
	var procs []passtProc
	if err := readJSON(s.Paths(vm).passtRecord(), &procs); err != nil {
		t.Fatalf("passt record: %v", err)
	}
	return procs
}

// TestSandboxPasstLifecycle runs real passt beside the fake QEMU: vlab
// starts it before QEMU with its socket in the 0700 runtime dir, as vlab's
// own uid, forwards bound on loopback; another local user cannot connect to
// the socket; stop --force, a failed start and a QEMU that exits on its own
// leave no passt and no socket behind.
func TestSandboxPasstLifecycle(t *testing.T) {
	fixture.Program(t, "passt")
	s := fakeStore(t, fakeqemu.ModeNormal)
	useTestFilter(t)
	createFake(t, s, "sb")
	spec, _ := s.Load("sb")
	spec.NICs = []NICSpec{{Mode: emulator.NetSandbox, Forwards: []Forward{{Proto: "tcp", HostAddr: "127.0.0.1", GuestPort: 22}}}}
	if err := s.Save(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Start(ctx, "sb", StartOptions{}); err != nil {
		t.Fatal(err)
	}
	p := s.Paths("sb")
	procs := passtOf(t, s, "sb")
	if len(procs) != 2 || procs[0].Check() != emulator.LiveRunning || procs[1].Check() != emulator.LiveRunning {
		t.Fatalf("passt and its filter after start: %+v", procs)
	}
	filter := procs[1]
	pp := procs[0]
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(pp.PID) + "/status")
	if !strings.Contains(string(status), "Uid:\t"+strconv.Itoa(os.Geteuid())+"\t") {
		t.Errorf("passt does not run as vlab's uid %d:\n%s", os.Geteuid(), status)
	}
	if fi, err := os.Stat(p.Run); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("runtime dir: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Lstat(p.passtSocket(0)); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("passt socket %s: %v", p.passtSocket(0), err)
	}
	info, err := s.Network(ctx, "sb")
	if err != nil {
		t.Fatal(err)
	}
	fw := info.NICs[0].Forwards[0]
	if info.NICs[0].Mode != "sandbox" || !fw.Active || fw.HostPort == 0 || !fw.Auto {
		t.Fatalf("net show of a sandbox vm: %+v", info.NICs[0])
	}
	if c, err := net.Dial("tcp", fw.Addr); err != nil {
		t.Errorf("passt does not listen on the auto forward %s: %v", fw.Addr, err)
	} else {
		c.Close()
	}
	if fi, err := s.AddForward(ctx, "sb", -1, Forward{Proto: "tcp", HostAddr: "127.0.0.1", GuestPort: 80}); err != nil || fi.Active || !strings.Contains(fi.Note, "next start") {
		t.Errorf("forward added to a running sandbox: %+v, %v", fi, err)
	}

	if os.Geteuid() == 0 {
		otherUserCannotConnect(t, s, p.passtSocket(0))
	}

	if _, err := s.Stop(ctx, "sb", StopOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if pp.Check() == emulator.LiveRunning || filter.Check() == emulator.LiveRunning {
		t.Errorf("passt %d or its filter %d still runs after stop --force", pp.PID, filter.PID)
	}
	if _, err := os.Lstat(p.passtSocket(0)); !os.IsNotExist(err) {
		t.Errorf("passt socket left after stop: %v", err)
	}

	// A QEMU that fails to start: passt goes with it.
	t.Setenv(fakeqemu.EnvMode, string(fakeqemu.ModeExitEarly))
	if err := s.Start(ctx, "sb", StartOptions{}); err == nil {
		t.Fatal("start with a failing qemu succeeded")
	}
	if pids := passtPIDs(t, p.passtSocket(0)); len(pids) != 0 {
		t.Errorf("passt %v left after a failed start", pids)
	}
	if _, err := os.Lstat(p.passtSocket(0)); !os.IsNotExist(err) {
		t.Errorf("passt socket left after a failed start: %v", err)
	}

	// A disposable run whose QEMU is killed behind vlab's back: the next
	// status check stops passt.
	t.Setenv(fakeqemu.EnvMode, string(fakeqemu.ModeNormal))
	if err := s.Start(ctx, "sb", StartOptions{Disposable: true}); err != nil {
		t.Fatal(err)
	}
	pp = passtOf(t, s, "sb")[0]
	st := wantState(t, s, "sb", StateRunning)
	proc, _ := os.FindProcess(st.PID)
	proc.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, _ := s.Status(ctx, "sb"); !st.State.Active() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("killed qemu still active")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pp.Check() == emulator.LiveRunning {
		t.Errorf("passt %d still runs after its qemu died", pp.PID)
	}
}

// passtPIDs lists running passt processes whose command line names sock.
func passtPIDs(t *testing.T, sock string) []int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		if strings.Contains(string(cmd), sock) && strings.Contains(string(cmd), "passt") && !strings.Contains(string(stat), ") Z ") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// otherUserCannotConnect checks that uid 65534 cannot connect to passt's
// socket, with every folder above the runtime dir opened up so that only
// vlab's own permissions stand in the way; a control socket beside the
// runtime dir, in a world-writable folder, is reachable by that uid.
func otherUserCannotConnect(t *testing.T, s *Store, sock string) {
	t.Helper()
	setpriv := fixture.Program(t, "setpriv")
	run := s.Paths("sb").Run
	for d := filepath.Dir(run); d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	open := filepath.Join(filepath.Dir(run), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	ctl := filepath.Join(open, "ctl.sock")
	l, err := net.Listen("unix", ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Chmod(ctl, 0o777)
	connect := func(path string) (bool, string) {
		cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", os.Args[0])
		cmd.Env = []string{connectEnv + "=" + path} // not the fake QEMU's mode
		out, err := cmd.CombinedOutput()
		return err == nil, string(out)
	}
	if ok, out := connect(ctl); !ok {
		t.Fatalf("control: uid 65534 cannot reach a world-accessible socket beside the runtime dir: %s", out)
	}
	if ok, _ := connect(sock); ok {
		t.Errorf("uid 65534 connected to passt's socket %s", sock)
	}
}
