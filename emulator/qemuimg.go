package emulator

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"vlab/internal/lazyre"
)

// QemuImg is the path of the qemu-img binary ("" when none is installed),
// and runs it. Every qemu-img command vlab runs is one of its methods: the
// argv is built here and nowhere else (qemuimg_test.go has each one),
// option strings are escaped by optValue, and a failure comes back as an
// *ImgError with what qemu-img said; the caller names the operation
// ("create disk X: ...").
type QemuImg string

// ErrNoQemuImg is returned by every method when no qemu-img is installed.
var ErrNoQemuImg = errors.New("qemu-img not found (install it: apt-get install qemu-utils)")

// ImgError is a qemu-img command that failed: its subcommand, what it wrote
// and how it ended.
type ImgError struct {
	Cmd    string // the subcommand: "create", "convert", "snapshot"...
	Output string // what qemu-img wrote, trimmed
	Err    error  // the exit status, or why it could not run
}

// Error is qemu-img's own message and its exit status, on one line.
func (e *ImgError) Error() string {
	return strings.Join(strings.Fields(strings.ReplaceAll(e.Output+" "+e.Err.Error(), "\n", "; ")), " ")
}

func (e *ImgError) Unwrap() error { return e.Err }

// ImgSource names an image qemu-img opens: a file in a known format, or an
// --image-opts string (FileImageOpts, SliceImageOpts) that opens it
// without letting QEMU follow names inside it.
type ImgSource struct {
	Path   string
	Format string // "" lets qemu-img probe (only for vlab's own images)
	Opts   string // --image-opts; set, it replaces Path and Format
}

func (src ImgSource) args() []string {
	if src.Opts != "" {
		return []string{"--image-opts", src.Opts}
	}
	var a []string
	if src.Format != "" {
		a = append(a, "-f", src.Format)
	}
	return append(a, src.Path)
}

// FileImageOpts is the --image-opts string that opens path as a plain file
// in format: QEMU never parses path as a json: or protocol name.
func FileImageOpts(format, path string) string {
	return "driver=" + optValue(format) + ",file.driver=file,file.filename=" + optValue(path)
}

// SliceImageOpts opens length bytes at offset inside the file at path (a
// disk inside an OVA) as an image in format.
func SliceImageOpts(format, path string, offset, length int64) string {
	return "driver=" + optValue(format) + ",file.driver=raw,file.offset=" + strconv.FormatInt(offset, 10) +
		",file.size=" + strconv.FormatInt(length, 10) + ",file.file.driver=file,file.file.filename=" + optValue(path)
}

// NoDataFile is added to a qcow2 image's --image-opts so that an external
// data file it names is never opened, not even to describe it.
const NoDataFile = ",data-file.driver=null-co"

// ImgCreate is a new image: empty, or an overlay on Backing.
type ImgCreate struct {
	Path   string
	Format string // "" is qcow2
	Size   int64  // bytes; 0 takes the backing image's size
	// Backing, when set, makes the image an overlay whose reads fall
	// through to Backing (format BackingFormat).
	Backing, BackingFormat string
	// Unsafe writes the backing name without opening it (-u): for chains
	// being assembled, whose backing images are not in place yet.
	Unsafe bool
}

func (c ImgCreate) argv() []string {
	format := c.Format
	if format == "" {
		format = "qcow2"
	}
	a := []string{"create", "-q", "-f", format}
	if c.Unsafe {
		a = append(a, "-u")
	}
	if c.Backing != "" {
		a = append(a, "-b", c.Backing, "-F", c.BackingFormat)
	}
	a = append(a, c.Path)
	if c.Size > 0 {
		a = append(a, strconv.FormatInt(c.Size, 10))
	}
	return a
}

// Create makes the image c describes.
func (q QemuImg) Create(ctx context.Context, c ImgCreate) error {
	_, err := q.run(ctx, c.argv())
	return err
}

func infoArgv(src ImgSource, shared bool) []string {
	a := []string{"info", "--output=json"}
	if shared {
		a = append(a, "-U") // an image a running QEMU holds: its metadata may be a moment old
	}
	return append(a, src.args()...)
}

// Info returns `qemu-img info --output=json` of src. shared reads an image
// a running QEMU holds.
func (q QemuImg) Info(ctx context.Context, src ImgSource, shared bool) ([]byte, error) {
	return q.output(ctx, infoArgv(src, shared))
}

func mapArgv(path, format string) []string {
	return []string{"map", "--output=json", "-f", format, path}
}

// Map returns `qemu-img map --output=json`: where the image's data lives.
func (q QemuImg) Map(ctx context.Context, path, format string) ([]byte, error) {
	return q.output(ctx, mapArgv(path, format))
}

func resizeArgv(path, format string, size int64) []string {
	return []string{"resize", "-q", "-f", format, path, strconv.FormatInt(size, 10)}
}

// Resize sets the image's virtual size.
func (q QemuImg) Resize(ctx context.Context, path, format string, size int64) error {
	_, err := q.run(ctx, resizeArgv(path, format, size))
	return err
}

func rebaseArgv(path, backing string) []string {
	return []string{"rebase", "-u", "-f", "qcow2", "-b", backing, "-F", "qcow2", path}
}

// Rebase makes the qcow2 overlay at path name backing (a qcow2) as its
// backing image, rewriting only the name (-u): the caller vouches that
// backing holds the same data as the old one.
func (q QemuImg) Rebase(ctx context.Context, path, backing string) error {
	_, err := q.run(ctx, rebaseArgv(path, backing))
	return err
}

// SnapshotOp is what Snapshot does with an internal snapshot.
type SnapshotOp string

// The internal snapshot operations of `qemu-img snapshot`.
const (
	SnapshotCreate SnapshotOp = "-c"
	SnapshotApply  SnapshotOp = "-a" // revert the image to it
	SnapshotDelete SnapshotOp = "-d"
)

func snapshotArgv(op SnapshotOp, tag, path string) []string {
	return []string{"snapshot", string(op), tag, path}
}

// Snapshot creates, applies or deletes the internal snapshot tag of the
// image at path.
func (q QemuImg) Snapshot(ctx context.Context, op SnapshotOp, tag, path string) error {
	_, err := q.run(ctx, snapshotArgv(op, tag, path))
	return err
}

// ImgConvert is a copy of Src into a new image.
type ImgConvert struct {
	Src       ImgSource
	Dst       string
	DstFormat string
	// Extra are options put before the file names, e.g. "-l",
	// "snapshot.name=TAG" (copy a snapshot's state).
	Extra []string
}

func (c ImgConvert) argv() []string {
	a := []string{"convert", "-p", "-O", c.DstFormat}
	a = append(a, c.Extra...)
	a = append(a, c.Src.args()...)
	return append(a, c.Dst)
}

// Convert copies c.Src into the new image c.Dst, calling progress (when
// not nil) with each percentage qemu-img reports. The caller removes Dst
// after a failure.
func (q QemuImg) Convert(ctx context.Context, c ImgConvert, progress func(pct float64)) error {
	if q == "" {
		return ErrNoQemuImg
	}
	argv := c.argv()
	cmd := exec.CommandContext(ctx, string(q), argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return &ImgError{Cmd: argv[0], Err: err}
	}
	if err := cmd.Start(); err != nil {
		return &ImgError{Cmd: argv[0], Err: err}
	}
	rest := scanProgress(stdout, progress)
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return &ImgError{Cmd: argv[0], Output: strings.TrimSpace(stderr.String() + " " + rest), Err: err}
	}
	return nil
}

// run runs qemu-img with argv and returns what it wrote (stdout and stderr).
func (q QemuImg) run(ctx context.Context, argv []string) (string, error) {
	if q == "" {
		return "", ErrNoQemuImg
	}
	out, err := exec.CommandContext(ctx, string(q), argv...).CombinedOutput()
	if err != nil {
		return "", &ImgError{Cmd: argv[0], Output: strings.TrimSpace(string(out)), Err: err}
	}
	return string(out), nil
}

// output runs qemu-img with argv and returns its stdout; stderr goes into
// the error.
func (q QemuImg) output(ctx context.Context, argv []string) ([]byte, error) {
	if q == "" {
		return nil, ErrNoQemuImg
	}
	cmd := exec.CommandContext(ctx, string(q), argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &ImgError{Cmd: argv[0], Output: strings.TrimSpace(stderr.String()), Err: err}
	}
	return out, nil
}

// progressRE matches one `qemu-img convert -p` report: "(12.34/100%)".
var progressRE = lazyre.New(`\((\d+(?:\.\d+)?)/100%\)`)

// scanProgress reads `qemu-img -p` output (reports separated by carriage
// returns) and calls report with each percentage. Other text is returned,
// for error messages.
func scanProgress(r io.Reader, report func(pct float64)) string {
	var other strings.Builder
	sc := bufio.NewScanner(r)
	sc.Split(splitCRLF)
	for sc.Scan() {
		line := sc.Text()
		if m := progressRE().FindStringSubmatch(line); m != nil {
			if pct, err := strconv.ParseFloat(m[1], 64); err == nil && report != nil {
				report(pct)
			}
			continue
		}
		if t := strings.TrimSpace(line); t != "" && other.Len() < 4096 {
			other.WriteString(t)
			other.WriteByte(' ')
		}
	}
	return strings.TrimSpace(other.String())
}

// splitCRLF is bufio.ScanLines that also ends a token at '\r'.
func splitCRLF(data []byte, atEOF bool) (int, []byte, error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF {
		return len(data), data, nil
	}
	return 0, nil, nil
}
