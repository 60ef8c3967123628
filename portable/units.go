package portable

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// unitNames are the byte multiples OVF writers spell out in
// AllocationUnits and capacityAllocationUnits.
var unitNames = map[string]int64{
	"b": 1, "byte": 1, "bytes": 1,
	"kb": 1 << 10, "kib": 1 << 10, "kilobyte": 1 << 10, "kilobytes": 1 << 10,
	"mb": 1 << 20, "mib": 1 << 20, "megabyte": 1 << 20, "megabytes": 1 << 20,
	"gb": 1 << 30, "gib": 1 << 30, "gigabyte": 1 << 30, "gigabytes": 1 << 30,
	"tb": 1 << 40, "tib": 1 << 40, "terabyte": 1 << 40, "terabytes": 1 << 40,
}

// ParseUnits returns the number of bytes one unit of s is: the DMTF
// programmatic form ("byte * 2^20", "byte*1024", "byte * 10^6") or a name
// ("MegaBytes", "MB", "GigaBytes"). An empty s is def.
func ParseUnits(s string, def int64) (int64, error) {
	t := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	if t == "" {
		return def, nil
	}
	parts := strings.Split(t, "*")
	n, ok := unitNames[parts[0]]
	if !ok {
		return 0, fmt.Errorf("allocation unit %q is unknown: use e.g. \"byte * 2^20\"", printable(s))
	}
	for _, f := range parts[1:] {
		v, err := unitFactor(f)
		if err != nil || n > math.MaxInt64/v {
			return 0, fmt.Errorf("allocation unit %q is unknown: use e.g. \"byte * 2^20\"", printable(s))
		}
		n *= v
	}
	return n, nil
}

// unitFactor reads "2^20" or "1024".
func unitFactor(f string) (int64, error) {
	base, exp, pow := strings.Cut(f, "^")
	b, err := strconv.ParseInt(base, 10, 64)
	if err != nil || b < 1 {
		return 0, fmt.Errorf("bad factor %q", f)
	}
	if !pow {
		return b, nil
	}
	e, err := strconv.Atoi(exp)
	if err != nil || e < 0 || e > 62 {
		return 0, fmt.Errorf("bad factor %q", f)
	}
	v := int64(1)
	for range e {
		if v > math.MaxInt64/b {
			return 0, fmt.Errorf("factor %q overflows", f)
		}
		v *= b
	}
	return v, nil
}
