package e2e

// The README's examples are real: TestREADME runs them and compares.
//
// Convention: a fenced block tagged ```console in README.md is a checked
// example. In it, a line starting with "$ " is a command and the lines up to
// the next "$ " line are what it prints (stdout and stderr as they interleave
// on a terminal). Every command is `vlab ...`, run through the real binary
// without a shell (words split at spaces; '...' and "..." quote); a trailing
// "  # comment" is a comment, and "# exit status N" in it states the status
// the command must end with (0 when not stated). The blocks run top to
// bottom in one private library, as a reader following the README would, in
// the folder of the x86_64 fixture guest (where scripts/demo.sh builds it:
// vmlinuz and initrd.img), after making the VM "demo" that demo.sh makes.
// Other fenced blocks (sh, json, none) are not run.
//
// Before comparing, only what differs between runs and hosts is rewritten to
// the README's fixed form, nothing else:
//   - the library's XDG folders and the fixture folder become the usual
//     ~/.local/share, ~/.local/state, ~/.config, ~/.cache, /run/user/1000 and
//     ~/.cache/vlab-testdata;
//   - a QEMU pid (learned from a "started NAME (pid N, ...)" line) becomes
//     41873, 41874, ... in order of appearance, wherever it is printed;
//   - a MAC address 52:54:00:xx:xx:xx becomes 52:54:00:12:34:56, :57, ...
//     in order of appearance;
//   - the host-dependent TCG reason ("TCG: /dev/kvm ...") becomes the one of
//     the CI machine (a KVM host that cannot run ordinary guests). The accel
//     itself is not rewritten: on a host where KVM works the test fails.
// Before a `vlab stop NAME` (without --force) the test waits until the guest
// has booted (its serial log shows VLAB-BOOT-OK), as a reader would, so the
// ACPI power-down is answered.
//
// When a block differs, the test prints a diff. To rewrite the README's
// blocks from the real output (then read the diff and commit):
//
//	VLAB_UPDATE_README=1 go test ./e2e -run 'TestREADME$' -count=1
//
// TestREADMECommands checks every `vlab X Y` in the README's code (fenced
// blocks and `inline code`): each names a real command (`vlab X Y --help`
// works and is the help of X Y). A console line that states a non-zero exit
// status may name a wrong command on purpose.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"vlab/internal/fixture"
)

// updateREADMEEnv names the variable that makes TestREADME rewrite README.md.
const updateREADMEEnv = "VLAB_UPDATE_README"

func readmePath(t *testing.T) string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(filepath.Dir(self)), "README.md")
}

// mdBlock is one fenced block of the README: its info string and the lines
// between the fences, [from, to) in the file's lines.
type mdBlock struct {
	info     string
	from, to int
}

// mdBlocks finds the fenced (```) blocks of lines.
func mdBlocks(lines []string) []mdBlock {
	var bs []mdBlock
	open := -1
	info := ""
	for i, l := range lines {
		if !strings.HasPrefix(l, "```") {
			continue
		}
		if open < 0 {
			open, info = i, strings.TrimSpace(strings.TrimPrefix(l, "```"))
			continue
		}
		bs = append(bs, mdBlock{info: info, from: open + 1, to: i})
		open = -1
	}
	return bs
}

// readmeCommand splits a console line "$ vlab ..." into its words and the
// exit status it states. Anything a shell would interpret is refused: the
// test runs no shell.
func readmeCommand(line string) (words []string, status int, err error) {
	cmd := strings.TrimPrefix(line, "$ ")
	if i := strings.Index(cmd, " #"); i >= 0 {
		comment := cmd[i+2:]
		cmd = cmd[:i]
		if m := regexp.MustCompile(`exit status (\d+)`).FindStringSubmatch(comment); m != nil {
			status, _ = strconv.Atoi(m[1])
		}
	}
	if strings.ContainsAny(cmd, "$`|<>;&\\*?~") {
		return nil, 0, fmt.Errorf("%q: the README test runs no shell: no $ ` | < > ; & \\ * ? ~", line)
	}
	var cur strings.Builder
	inWord := false
	quote := rune(0)
	for _, r := range cmd {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, 0, fmt.Errorf("%q: unclosed quote", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) < 1 || words[0] != "vlab" {
		return nil, 0, fmt.Errorf("%q: a console block runs only vlab commands", line)
	}
	return words[1:], status, nil
}

// readmeNormal rewrites what legitimately differs between runs to the
// README's fixed form (see the comment at the top of this file).
type readmeNormal struct {
	paths [][2]string       // real prefix → README form, longest first
	pids  map[string]string // real pid → README pid
	macs  map[string]string
}

var (
	reStartedPID = regexp.MustCompile(`(?m)^started \S+ \(pid (\d+), `)
	reMAC        = regexp.MustCompile(`52:54:00(:[0-9a-f]{2}){3}`)
	reTCGReason  = regexp.MustCompile(`TCG: /dev/kvm [^"\n]*`)
)

const readmeTCGReason = "TCG: /dev/kvm opens but this CPU exposes no vmx/svm (nested or paravirtual KVM cannot run ordinary guests)"

func (n *readmeNormal) apply(out string) string {
	for _, m := range reStartedPID.FindAllStringSubmatch(out, -1) {
		if _, ok := n.pids[m[1]]; !ok {
			n.pids[m[1]] = strconv.Itoa(41873 + len(n.pids))
		}
	}
	if len(n.pids) > 0 {
		// One pass, before the paths are rewritten (/run/user/1000 is no pid).
		var alts []string
		for real := range n.pids {
			alts = append(alts, real)
		}
		re := regexp.MustCompile(`\b(` + strings.Join(alts, "|") + `)\b`)
		out = re.ReplaceAllStringFunc(out, func(pid string) string { return n.pids[pid] })
	}
	for _, p := range n.paths {
		out = strings.ReplaceAll(out, p[0], p[1])
	}
	out = reMAC.ReplaceAllStringFunc(out, func(mac string) string {
		if _, ok := n.macs[mac]; !ok {
			n.macs[mac] = fmt.Sprintf("52:54:00:12:34:%02x", 0x56+len(n.macs))
		}
		return n.macs[mac]
	})
	return reTCGReason.ReplaceAllString(out, readmeTCGReason)
}

func TestREADME(t *testing.T) {
	fixture.Program(t, "qemu-system-x86_64")
	kernel, initrd := fixture.Guest(t, "x86_64")
	dir := filepath.Dir(kernel)
	path := readmePath(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")

	e := newEnv(t)
	// What scripts/demo.sh leaves: the stopped VM demo.
	e.ok("create", "demo", "--memory", "512M", "--disk", "256M", "--kernel", kernel, "--initrd", initrd,
		"--append", "console=ttyS0 vlab.marker=hello-from-demo vlab.net=1 vlab.httpd=80", "--forward", "tcp:8080:80")

	env := func(key string) string {
		for _, kv := range e.vars {
			if v, ok := strings.CutPrefix(kv, key+"="); ok {
				return v
			}
		}
		t.Fatalf("no %s in the test environment", key)
		return ""
	}
	n := &readmeNormal{pids: map[string]string{}, macs: map[string]string{}}
	n.paths = [][2]string{
		{dir, "~/.cache/vlab-testdata/x86_64"},
		{env("XDG_RUNTIME_DIR"), "/run/user/1000"},
		{env("XDG_DATA_HOME"), "~/.local/share"},
		{env("XDG_STATE_HOME"), "~/.local/state"},
		{env("XDG_CONFIG_HOME"), "~/.config"},
		{env("XDG_CACHE_HOME"), "~/.cache"},
	}

	var checked int
	var diffs []string
	got := append([]string(nil), lines...) // README with every block as the binary printed it
	blocks := mdBlocks(lines)
	real := make([][]string, len(blocks))
	for bi, b := range blocks {
		if b.info != "console" {
			continue
		}
		checked++
		var out []string
		for _, l := range lines[b.from:b.to] {
			if !strings.HasPrefix(l, "$ ") {
				continue // expected output: replaced by what the command prints
			}
			args, status, err := readmeCommand(l)
			if err != nil {
				t.Fatalf("README.md line %d: %v", b.from+1, err)
			}
			if len(args) >= 2 && args[0] == "stop" && !contains(args, "--force") {
				e.waitSerial(args[len(args)-1], "VLAB-BOOT-OK")
			}
			printed, code := e.runCombined(dir, args)
			if code != status {
				t.Errorf("README: `%s` exited %d, want %d (state another status with \"  # exit status N\")\n%s", strings.TrimPrefix(l, "$ "), code, status, printed)
			}
			out = append(out, l)
			if printed = strings.TrimRight(n.apply(printed), "\n"); printed != "" {
				out = append(out, strings.Split(printed, "\n")...)
			}
		}
		real[bi] = out
		if want := lines[b.from:b.to]; strings.Join(want, "\n") != strings.Join(out, "\n") {
			diffs = append(diffs, fmt.Sprintf("README.md lines %d-%d (- README, + real):\n%s", b.from+1, b.to, lineDiff(want, out)))
		}
	}
	if checked == 0 {
		t.Fatal("README.md has no ```console block: nothing checked")
	}
	if len(diffs) == 0 {
		return
	}
	if os.Getenv(updateREADMEEnv) == "1" {
		for bi := len(blocks) - 1; bi >= 0; bi-- { // back to front: earlier line numbers stay valid
			if b := blocks[bi]; real[bi] != nil {
				got = append(got[:b.from], append(append([]string(nil), real[bi]...), got[b.to:]...)...)
			}
		}
		if err := os.WriteFile(path, []byte(strings.Join(got, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %d block(s) of %s from real output:\n%s", len(diffs), path, strings.Join(diffs, "\n"))
		return
	}
	t.Errorf("the README's examples differ from what vlab prints:\n%s\nIf the new output is right, rewrite the README from it:\n\t%s=1 go test ./e2e -run 'TestREADME$' -count=1",
		strings.Join(diffs, "\n"), updateREADMEEnv)
}

func contains(words []string, w string) bool {
	for _, x := range words {
		if x == w {
			return true
		}
	}
	return false
}

// runCombined runs vlab with args in folder dir and returns what it printed
// on stdout and stderr, interleaved as on a terminal, and its exit status.
func (e *env) runCombined(dir string, args []string) (string, int) {
	e.t.Helper()
	cmd := exec.Command(vlabBin, args...)
	cmd.Env, cmd.Dir = e.vars, dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run vlab %v: %v", args, err)
	}
	return out.String(), 0
}

// lineDiff shows how b differs from a, line by line (longest common
// subsequence): "-" lines only in a, "+" lines only in b.
func lineDiff(a, b []string) string {
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var s strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			fmt.Fprintf(&s, "  %s\n", a[i])
			i, j = i+1, j+1
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&s, "+ %s\n", b[j])
			j++
		default:
			fmt.Fprintf(&s, "- %s\n", a[i])
			i++
		}
	}
	return s.String()
}

// readmeCode returns the README's code: the lines of fenced blocks (shell
// comments removed) and the text of `inline code` spans outside them.
func readmeCode(text string) []string {
	lines := strings.Split(text, "\n")
	var code []string
	inFence := make([]bool, len(lines))
	for _, b := range mdBlocks(lines) {
		for i := b.from - 1; i <= b.to; i++ {
			inFence[i] = true
		}
		for _, l := range lines[b.from:b.to] {
			if i := strings.Index(l, " #"); i >= 0 {
				if strings.HasPrefix(l, "$ ") && reBadStatus.MatchString(l[i:]) {
					continue // a mistake on purpose, e.g. a mistyped command
				}
				l = l[:i] // a shell comment
			}
			if strings.HasPrefix(l, "#") {
				continue
			}
			code = append(code, l)
		}
	}
	var prose []string
	for i, l := range lines {
		if !inFence[i] {
			prose = append(prose, l)
		}
	}
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(strings.Join(prose, "\n"), -1) {
		code = append(code, m[1])
	}
	return code
}

var (
	reVlabWords = regexp.MustCompile(`(?:^|[\s(])vlab((?:[ \t\n]+[^\s]+)*)`)
	reCmdWord   = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	reBadStatus = regexp.MustCompile(`exit status [1-9]`)
)

// readmeCommandPaths returns every command path the code names: for
// "vlab snapshot create\|list NAME" the paths [snapshot create] and
// [snapshot list]. hasSubs says whether a path has subcommands; the walk
// stops at the first word that is not a command name (an argument, a flag,
// a placeholder).
func readmeCommandPaths(code []string, hasSubs func([]string) bool) [][]string {
	var paths [][]string
	for _, c := range code {
		for _, m := range reVlabWords.FindAllStringSubmatch(c, -1) {
			words := strings.Fields(m[1])
			var walk func(path []string, rest []string)
			walk = func(path []string, rest []string) {
				if len(rest) == 0 || !hasSubs(path) {
					paths = append(paths, path)
					return
				}
				w := strings.Trim(strings.ReplaceAll(rest[0], `\|`, "|"), "`'\"),.;:")
				alts := strings.FieldsFunc(w, func(r rune) bool { return r == '|' || r == '/' })
				for _, a := range alts {
					if !reCmdWord.MatchString(a) {
						paths = append(paths, path)
						return
					}
				}
				if len(alts) == 0 {
					paths = append(paths, path)
					return
				}
				for _, a := range alts {
					walk(append(append([]string(nil), path...), a), rest[1:])
				}
			}
			walk(nil, words)
		}
	}
	return paths
}

func TestREADMECommands(t *testing.T) {
	data, err := os.ReadFile(readmePath(t))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	type helped struct {
		text string
		code int
	}
	helps := map[string]helped{}
	help := func(path []string) helped {
		k := strings.Join(path, " ")
		if h, ok := helps[k]; ok {
			return h
		}
		out, errs, code := e.run(append(append([]string(nil), path...), "--help")...)
		helps[k] = helped{out + errs, code}
		return helps[k]
	}
	hasSubs := func(path []string) bool {
		return strings.Contains(help(path).text, "Available Commands:")
	}
	paths := readmeCommandPaths(readmeCode(string(data)), hasSubs)
	if len(paths) < 20 {
		t.Fatalf("found only %d `vlab ...` commands in README.md: is the extraction broken? %q", len(paths), paths)
	}
	seen := map[string]bool{}
	for _, p := range paths {
		k := strings.Join(p, " ")
		if seen[k] || k == "" {
			continue
		}
		seen[k] = true
		h := help(p)
		// The help of `vlab X Y` has the usage line "vlab X Y ..."; the help
		// of a parent that ignored an unknown word does not.
		usage := regexp.MustCompile(`(?m)^\s+vlab ` + regexp.QuoteMeta(k) + `( |$)`)
		if h.code != 0 || !usage.MatchString(h.text) {
			t.Errorf("README.md names `vlab %s`, which is no command: `vlab %s --help` exits %d:\n%s", k, k, h.code, tail(h.text, 600))
		}
	}
	var names []string
	for k := range seen {
		names = append(names, k)
	}
	t.Logf("checked the %d commands README.md names: %s", len(seen), strings.Join(names, ", "))
}

// TestREADMECommandPaths checks the extraction on its own: alternatives,
// escaped table pipes, comments, placeholders and arguments.
func TestREADMECommandPaths(t *testing.T) {
	subs := map[string]bool{"": true, "snapshot": true, "net": true, "net forward": true}
	hasSubs := func(p []string) bool { return subs[strings.Join(p, " ")] }
	text := "intro `vlab snapshot create\\|list NAME [TAG]` and `vlab net\nforward add/rm NAME`\n" +
		"```sh\n./x.sh  # builds vlab and a guest\ngdb -ex \"target $(vlab show NAME --json)\"\n```\n" +
		"```console\n$ vlab strat x  # exit status 2\n$ vlab list\n```\n"
	var got []string
	for _, p := range readmeCommandPaths(readmeCode(text), hasSubs) {
		got = append(got, strings.Join(p, " "))
	}
	want := []string{"show", "list", "snapshot create", "snapshot list", "net forward add", "net forward rm"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("command paths = %q, want %q", got, want)
	}
}
