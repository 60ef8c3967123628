package e2e

// The CLI contract (docs/json.md, docs/cli.md), checked over every leaf
// command of the real vlab binary, as `vlab __commands` lists them.
//
// ADDING A COMMAND: add ONE line to contractSteps below, at the point of the
// sequence where the world suits it (VM "a" exists from the "create" step,
// runs from "start" to "stop"), e.g.
//
//	{path: "share add", args: []string{"share", "add", "a", "{tmp}"}},
//
// and, if it has --json, its keys to the table in docs/json.md. {tmp} in
// args is the test's scratch folder. A command without --json names why in
// noJSON; a command whose --json output streams until interrupted sets
// stream. TestCLIContractJSON fails for a leaf command without a step.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"vlab/internal/fixture"
)

type contractStep struct {
	path   string   // the command, as `vlab __commands` names it
	args   []string // the whole argument list; --json is added when the command has it
	stdin  string
	noJSON string // why this command has no --json
	stream bool   // prints its JSON, then serves until interrupted
	exit1  bool   // exit status 1 still comes with its JSON (doctor with findings)
}

// contractSteps run in order in one world.
var contractSteps = []contractStep{
	{path: "profiles", args: []string{"profiles", "debian"}},
	{path: "doctor", args: []string{"doctor"}, exit1: true},
	{path: "detect", args: []string{"detect", "{detect-iso}"}},
	{path: "create", args: []string{"create", "a", "{guest}"}},
	{path: "list", args: []string{"list"}},
	{path: "show", args: []string{"show", "a"}},
	{path: "cmdline", args: []string{"cmdline", "a"}},
	{path: "edit", args: []string{"edit", "a", "--memory", "384M", "--share", "{tmp},tag=scratch"}},
	{path: "share list", args: []string{"share", "list", "a"}},
	{path: "disk add", args: []string{"disk", "add", "a", "64M"}},
	{path: "disk resize", args: []string{"disk", "resize", "a", "hd0", "128M"}},
	{path: "disk import", args: []string{"disk", "import", "a", "{tmp}/import.qcow2"}},
	{path: "disk convert", args: []string{"disk", "convert", "a", "hd2"}}, // the raw disk setup added
	{path: "disk rm", args: []string{"disk", "rm", "a", "hd1", "--delete-file", "--yes"}},
	{path: "snapshot create", args: []string{"snapshot", "create", "a", "s1"}},
	{path: "snapshot list", args: []string{"snapshot", "list", "a"}},
	{path: "snapshot restore", args: []string{"snapshot", "restore", "a", "s1", "--yes"}},
	{path: "snapshot delete", args: []string{"snapshot", "delete", "a", "s1", "--yes"}},
	{path: "net forward add", args: []string{"net", "forward", "add", "a", "tcp:auto:22"}},
	{path: "net forward list", args: []string{"net", "forward", "list", "a"}},
	{path: "net show", args: []string{"net", "show", "a"}},
	{path: "net forward rm", args: []string{"net", "forward", "rm", "a", "tcp:auto:22"}},
	{path: "net lab create", args: []string{"net", "lab", "create", "l1"}},
	{path: "net lab list", args: []string{"net", "lab", "list"}},
	{path: "net lab rm", args: []string{"net", "lab", "rm", "l1"}},
	{path: "iso add", args: []string{"iso", "add", "{tmp}/t.iso"}},
	{path: "iso get", args: []string{"iso", "get", "{http}/g.iso", "--sha256", "{g-sha}"}},
	{path: "iso list", args: []string{"iso", "list"}},
	{path: "cdrom insert", args: []string{"cdrom", "insert", "a", "g.iso"}},
	{path: "cdrom eject", args: []string{"cdrom", "eject", "a"}},
	{path: "iso rm", args: []string{"iso", "rm", "g.iso"}},
	{path: "export", args: []string{"export", "a", "{tmp}/a.ova"}},
	{path: "import", args: []string{"import", "{tmp}/a.ova", "--name", "imp"}},
	{path: "gallery update", args: []string{"gallery", "update", "{http}/gallery.toml"}},
	{path: "clone", args: []string{"clone", "a", "b"}},
	{path: "delete", args: []string{"delete", "b", "--yes"}},
	{path: "start", args: []string{"start", "a"}},
	{path: "pause", args: []string{"pause", "a"}},
	{path: "resume", args: []string{"resume", "a"}},
	{path: "screenshot", args: []string{"screenshot", "a", "{tmp}/a.png"}},
	{path: "vnc", args: []string{"vnc", "a", "--external"}, stream: true},
	{path: "reset", args: []string{"reset", "a"}},
	{path: "monitor", args: []string{"monitor", "a", "-c", "info status"}},
	{path: "trace", args: []string{"trace", "a", "--list"}},
	{path: "replay", args: []string{"replay", "a", "--list"}},
	{path: "ssh", noJSON: "an interactive ssh session (or the guest command's own output); e2e guest tests drive it"},
	{path: "exec", noJSON: "passes the guest command's output and exit status through unchanged"},
	{path: "cp", noJSON: "copies files as scp does; its exit status says whether it worked"},
	{path: "qmp", noJSON: "prints QEMU's own QMP replies verbatim (JSON already); e2e TestQMP* drive it"},
	{path: "console", noJSON: "an interactive serial console; e2e tests attach through it"},
	{path: "stop", args: []string{"stop", "a", "--force"}},
	{path: "lab up", args: []string{"lab", "up", "{tmp}/lab.toml"}},
	{path: "lab reset", args: []string{"lab", "reset", "{tmp}/lab.toml"}},
	{path: "lab down", args: []string{"lab", "down", "{tmp}/lab.toml", "--force"}},
	{path: "debug", args: []string{"debug", "a"}}, // starts the stopped VM with a stub; --json prints the gdb command instead of running it
	{path: "completion bash", noJSON: "prints a shell script; TestCompletion* run it"},
	{path: "completion zsh", noJSON: "prints a shell script"},
	{path: "completion fish", noJSON: "prints a shell script"},
	{path: "completion powershell", noJSON: "prints a shell script"},
}

// leafCommand is one line of `vlab __commands`.
type leafCommand struct {
	Path string `json:"path"`
	JSON bool   `json:"json"`
}

func leafCommands(t *testing.T, e *env) []leafCommand {
	t.Helper()
	var leaves []leafCommand
	if err := json.Unmarshal([]byte(e.ok("__commands")), &leaves); err != nil {
		t.Fatalf("__commands: %v", err)
	}
	if len(leaves) < 30 {
		t.Fatalf("__commands lists %d commands, want the whole tree", len(leaves))
	}
	return leaves
}

// docShape is one row of docs/json.md's table.
type docShape struct {
	array    bool
	keys     []string // always present
	optional []string // present when they apply (written key? in the table)
}

var docRowRE = regexp.MustCompile("^\\| `vlab ([a-z -]+)` \\| (object|array) \\| (.*) \\|$")

// readJSONDoc parses docs/json.md's table of commands and their keys.
func readJSONDoc(t *testing.T) map[string]docShape {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(self)), "docs", "json.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docShape{}
	for _, line := range strings.Split(string(b), "\n") {
		m := docRowRE.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		d := docShape{array: m[2] == "array"}
		for _, k := range regexp.MustCompile("`([a-z0-9_]+\\??)`").FindAllStringSubmatch(m[3], -1) {
			if key, ok := strings.CutSuffix(k[1], "?"); ok {
				d.optional = append(d.optional, key)
			} else {
				d.keys = append(d.keys, k[1])
			}
		}
		out[m[1]] = d
	}
	return out
}

var snakeKey = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// dataMaps are keys whose objects are data (MAC -> IP), not contract keys.
var dataMaps = map[string]bool{"leases": true}

// checkSnake reports every object key below v that is not lowercase
// snake_case.
func checkSnake(v any, at string, bad *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			if !snakeKey.MatchString(k) {
				*bad = append(*bad, at+"."+k)
			}
			if !dataMaps[k] {
				checkSnake(c, at+"."+k, bad)
			}
		}
	case []any:
		for _, c := range x {
			checkSnake(c, at+"[]", bad)
		}
	}
}

// contractWorld prepares what the steps refer to and returns the
// replacements of their {placeholders}.
func contractWorld(t *testing.T, e *env) map[string]string {
	t.Helper()
	fixture.Program(t, "qemu-system-x86_64")
	qemuImg := fixture.Program(t, "qemu-img")
	tmp := filepath.Join(e.home, "scratch dir")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(qemuImg, "create", "-f", "qcow2", filepath.Join(tmp, "import.qcow2"), "16M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	iso, err := os.ReadFile(isoFixture(t, "detect/FreeBSD-13.1-RELEASE-amd64-disc1.iso"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "t.iso"), iso, 0o600); err != nil {
		t.Fatal(err)
	}
	_, self, _, _ := runtime.Caller(0)
	gallery, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(self)), "machine", "gallery", "gallery.toml"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".toml") {
			http.ServeContent(w, r, "gallery.toml", time.Time{}, bytes.NewReader(gallery))
			return
		}
		http.ServeContent(w, r, "g.iso", time.Time{}, bytes.NewReader(iso))
	}))
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(iso)
	kernel, initrd := fixture.Guest(t, "x86_64")
	lab := fmt.Sprintf("[[vm]]\nname = \"lab-a\"\nkernel = %q\ninitrd = %q\nappend = %q\nmemory = \"256M\"\n",
		kernel, initrd, fixture.Append("x86_64"))
	if err := os.WriteFile(filepath.Join(tmp, "lab.toml"), []byte(lab), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"{tmp}":        tmp,
		"{http}":       srv.URL,
		"{g-sha}":      hex.EncodeToString(sum[:]),
		"{detect-iso}": isoFixture(t, "detect/FreeBSD-13.1-RELEASE-amd64-disc1.iso"),
		"{guest}": strings.Join([]string{"--arch", "x86_64", "--memory", "256M", "--kernel", kernel, "--initrd", initrd,
			"--append", fixture.Append("x86_64")}, "\x00"),
	}
}

func expand(args []string, repl map[string]string) []string {
	var out []string
	for _, a := range args {
		if r, ok := repl[a]; ok && strings.Contains(r, "\x00") {
			out = append(out, strings.Split(r, "\x00")...)
			continue
		}
		for k, v := range repl {
			a = strings.ReplaceAll(a, k, v)
		}
		out = append(out, a)
	}
	return out
}

// runJSON runs vlab args and decodes the first JSON value it prints. A
// stream command is interrupted once it has printed it.
func (e *env) runJSON(t *testing.T, args []string, stream, exit1 bool) (any, string) {
	t.Helper()
	cmd := exec.Command(vlabBin, args...)
	cmd.Env = e.vars
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(io.LimitReader(stdoutUntilJSON(stdout, stream), 8<<20))
	if stream {
		cmd.Process.Signal(syscall.SIGINT)
		go io.Copy(io.Discard, stdout)
	}
	if err := cmd.Wait(); err != nil && !stream && !(exit1 && cmd.ProcessState.ExitCode() == 1) {
		t.Fatalf("vlab %s: %v\nstderr: %s", strings.Join(args, " "), err, errb.String())
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("vlab %s: output is not one JSON value: %v\n%s", strings.Join(args, " "), err, raw)
	}
	return v, string(raw)
}

// stdoutUntilJSON returns all of r, or for a stream the first JSON value.
func stdoutUntilJSON(r io.Reader, stream bool) io.Reader {
	if !stream {
		return r
	}
	var m json.RawMessage
	if err := json.NewDecoder(bufio.NewReader(r)).Decode(&m); err != nil {
		return strings.NewReader("")
	}
	return bytes.NewReader(m)
}

func TestCLIContractJSON(t *testing.T) {
	e := newEnv(t)
	leaves := leafCommands(t, e)
	docs := readJSONDoc(t)
	steps := map[string]contractStep{}
	for _, s := range contractSteps {
		steps[s.path] = s
	}
	for _, l := range leaves {
		s, ok := steps[l.Path]
		switch {
		case !ok:
			t.Errorf("vlab %s has no step in e2e/contract_test.go contractSteps: add one (see the top of the file)", l.Path)
		case l.JSON && s.noJSON != "":
			t.Errorf("vlab %s has --json now: replace its noJSON step with one that runs it", l.Path)
		case !l.JSON && s.noJSON == "":
			t.Errorf("vlab %s has no --json: every command that prints a result must have it (docs/json.md)", l.Path)
		}
		if _, ok := docs[l.Path]; l.JSON && !ok {
			t.Errorf("vlab %s --json is not in docs/json.md's table", l.Path)
		}
	}
	for _, s := range contractSteps {
		if !slices.ContainsFunc(leaves, func(l leafCommand) bool { return l.Path == s.path }) {
			t.Errorf("contract step %q names no command of `vlab __commands`", s.path)
		}
	}
	if t.Failed() {
		return
	}
	repl := contractWorld(t, e)
	for _, s := range contractSteps {
		if s.noJSON != "" {
			continue
		}
		if s.path == "disk convert" {
			e.ok("disk", "add", "a", "32M", "--format", "raw") // hd2, for convert to turn into qcow2
		}
		args := append(expand(s.args, repl), "--json")
		v, raw := e.runJSON(t, args, s.stream, s.exit1)
		checkShape(t, s.path, docs[s.path], v, raw)
	}
}

// checkShape checks one command's JSON against its docs/json.md row.
func checkShape(t *testing.T, path string, doc docShape, v any, raw string) {
	t.Helper()
	var bad []string
	checkSnake(v, "", &bad)
	if len(bad) > 0 {
		t.Errorf("vlab %s --json: keys not lowercase snake_case: %v", path, bad)
	}
	obj, isObj := v.(map[string]any)
	if doc.array {
		arr, ok := v.([]any)
		if !ok {
			t.Errorf("vlab %s --json: want an array (docs/json.md), got %s", path, raw)
			return
		}
		if len(arr) == 0 {
			if len(doc.keys) > 0 {
				t.Errorf("vlab %s --json: empty array, the test world should give it an element", path)
			}
			return
		}
		if obj, isObj = arr[0].(map[string]any); !isObj {
			if len(doc.keys) > 0 {
				t.Errorf("vlab %s --json: want objects in the array, got %s", path, raw)
			}
			return
		}
	} else if !isObj {
		t.Errorf("vlab %s --json: want one object (docs/json.md), got %s", path, raw)
		return
	} else if obj["version"] != float64(1) {
		t.Errorf(`vlab %s --json: want "version": 1, got %v`, path, obj["version"])
	}
	var missing, undocumented []string
	for _, k := range doc.keys {
		if _, ok := obj[k]; !ok {
			missing = append(missing, k)
		}
	}
	for k := range obj {
		if !slices.Contains(doc.keys, k) && !slices.Contains(doc.optional, k) {
			undocumented = append(undocumented, k)
		}
	}
	sort.Strings(undocumented)
	if len(missing) > 0 || len(undocumented) > 0 {
		var all []string
		for k := range obj {
			all = append(all, "`"+k+"`")
		}
		sort.Strings(all)
		t.Errorf("vlab %s --json: documented keys missing %v, undocumented keys %v (has %s)", path, missing, undocumented, strings.Join(all, ", "))
	}
}

// variadic are the commands whose last argument repeats (trace NAME
// PATTERN...), so extra arguments are not a usage error.
var variadic = map[string]bool{"trace": true}

func TestCLIUsageErrorsExit2(t *testing.T) {
	e := newEnv(t)
	for _, l := range leafCommands(t, e) {
		args := strings.Fields(l.Path)
		if _, errs, code := e.run(append(slices.Clone(args), "--no-such-flag")...); code != 2 || !strings.Contains(errs, "--no-such-flag") {
			t.Errorf("vlab %s --no-such-flag: exit %d, want 2 with an error naming the flag; stderr %q", l.Path, code, errs)
		}
		many := append(slices.Clone(args), "x1", "x2", "x3", "x4", "x5", "x6")
		if variadic[l.Path] {
			// takes any number of arguments: x2.. are its data, so it fails on VM x1
		} else if _, errs, code := e.run(many...); code != 2 || !strings.Contains(errs, "--help") {
			t.Errorf("vlab %s with 6 extra arguments: exit %d, want 2 pointing at --help; stderr %q", l.Path, code, errs)
		}
		if l.JSON && len(args) > 0 {
			if _, errs, code := e.run(append(slices.Clone(args), "--json=maybe")...); code != 2 {
				t.Errorf("vlab %s --json=maybe: exit %d, want 2; stderr %q", l.Path, code, errs)
			}
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"strat"}, "did you mean `start`?"},
		{[]string{"snapshot", "crate"}, "did you mean `create`?"},
		{[]string{"net", "forward", "ad"}, "did you mean `add`"},
		{[]string{"disk", "rezise"}, "did you mean `resize`?"},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "vlab"`},
	} {
		line := e.fail([]string{c.want}, c.args...)
		if _, _, code := e.run(c.args...); code != 2 {
			t.Errorf("vlab %s: exit %d, want 2 (%s)", strings.Join(c.args, " "), code, line)
		}
	}
	// An operation that fails is 1, not 2.
	if _, errs, code := e.run("start", "nosuchvm"); code != 1 {
		t.Errorf("vlab start nosuchvm: exit %d, want 1; stderr %q", code, errs)
	}
}

// TestCLIFlagHelp: no flag's help takes a backtick-quoted command as its
// value's name (pflag's placeholder rule showed "--paused vlab resume").
func TestCLIFlagHelp(t *testing.T) {
	e := newEnv(t)
	placeholder := regexp.MustCompile("(?m)^\\s+(-[a-z], )?--[a-z-]+ vlab ")
	for _, l := range leafCommands(t, e) {
		out := e.ok(append(strings.Fields(l.Path), "--help")...)
		if m := placeholder.FindString(out); m != "" {
			t.Errorf("vlab %s --help: a flag shows a command as its value name: %q", l.Path, m)
		}
	}
}
