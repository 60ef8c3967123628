package machine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// AbsPath makes a file path a person typed absolute, so that it means the
// same file whatever folder a later command runs in: relative paths are
// taken from the current folder, and a leading "~/" (which a shell does not
// expand after "--iso=") from the home folder. "" stays "".
func AbsPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if rest, ok := strings.CutPrefix(p+"/", "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("path %s: %w", p, err)
		}
		p = filepath.Join(home, rest) // Join drops the "/" added above
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("path %s: %w", p, err)
	}
	return a, nil
}

// AbsBoot makes the files b names (ISO, kernel, initrd, device tree)
// absolute with AbsPath. CheckSources then checks them.
func AbsBoot(b *Boot) error {
	for _, f := range []*string{&b.ISO, &b.Kernel, &b.Initrd, &b.DTB} {
		a, err := AbsPath(*f)
		if err != nil {
			return err
		}
		*f = a
	}
	return nil
}
