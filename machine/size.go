package machine

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a byte count written the way people type it: 512M, 2G, 20G.
type Size int64

// Binary size units.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

var sizeUnits = map[string]Size{
	"B": 1,
	"K": KiB, "KB": KiB, "KIB": KiB,
	"M": MiB, "MB": MiB, "MIB": MiB,
	"G": GiB, "GB": GiB, "GIB": GiB,
	"T": TiB, "TB": TiB, "TIB": TiB,
}

// ParseSize parses "512M", "2G", "1.5G", "20GiB", "4096B". A unit is required: a bare
// number is ambiguous between bytes and megabytes.
func ParseSize(s string) (Size, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty size: use a number with a unit, e.g. 512M or 20G")
	}
	i := 0
	for i < len(t) && (t[i] == '.' || t[i] == '-' || t[i] == '+' || (t[i] >= '0' && t[i] <= '9')) {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if unit == "" {
		return 0, fmt.Errorf("size %q has no unit: write e.g. %sM or %sG", s, num, num)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q has unknown unit %q: use B, K, M, G or T", s, unit)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("size %q is not a number with a unit: write e.g. 512M or 20G", s)
	}
	if f <= 0 {
		return 0, fmt.Errorf("size %q must be positive: write e.g. 512M or 20G", s)
	}
	b := f * float64(mult)
	if b != math.Trunc(b) {
		return 0, fmt.Errorf("size %q is not a whole number of bytes: use a larger unit, e.g. 512M", s)
	}
	if b > float64(math.MaxInt64/2) {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return Size(b), nil
}

// String formats the size with the largest unit that divides it exactly.
func (z Size) String() string {
	switch {
	case z <= 0:
		return "0"
	case z%TiB == 0:
		return fmt.Sprintf("%dT", z/TiB)
	case z%GiB == 0:
		return fmt.Sprintf("%dG", z/GiB)
	case z%MiB == 0:
		return fmt.Sprintf("%dM", z/MiB)
	case z%KiB == 0:
		return fmt.Sprintf("%dK", z/KiB)
	}
	return fmt.Sprintf("%dB", int64(z))
}

// Human formats the size rounded to one decimal for display (1.5G).
func (z Size) Human() string {
	for _, u := range []struct {
		suffix string
		unit   Size
	}{{"T", TiB}, {"G", GiB}, {"M", MiB}, {"K", KiB}} {
		if z >= u.unit {
			v := strconv.FormatFloat(float64(z)/float64(u.unit), 'f', 1, 64)
			return strings.TrimSuffix(v, ".0") + u.suffix
		}
	}
	return fmt.Sprintf("%dB", int64(z))
}

// MarshalText implements encoding.TextMarshaler.
func (z Size) MarshalText() ([]byte, error) { return []byte(z.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (z *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*z = v
	return nil
}
