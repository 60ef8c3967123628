package machine

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"vlab/emulator"
)

// fill sets every field reachable from v to a non-zero value and gives
// every slice two elements, so that a clone that forgets a slice is seen.
func fill(t *testing.T, v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint64, reflect.Uint32:
		if v.CanInt() {
			v.SetInt(7)
		} else {
			v.SetUint(7)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := 0; i < 2; i++ {
			fill(t, v.Index(i), path+"[]")
		}
	default:
		t.Fatalf("%s: a %s field: teach Spec.clone (and this test) to copy it", path, v.Kind())
	}
}

// shared returns the path of the first slice a and b share memory in.
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
				return p
			}
		}
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := 0; i < a.Len(); i++ {
			if p := shared(a.Index(i), b.Index(i), path+"[]"); p != "" {
				return p
			}
		}
	}
	return ""
}

func TestSpecClone(t *testing.T) {
	var spec Spec
	fill(t, reflect.ValueOf(&spec).Elem(), "Spec")
	c := spec.clone()
	if !reflect.DeepEqual(&spec, c) {
		t.Fatalf("clone differs:\n%+v\n%+v", spec, *c)
	}
	if p := shared(reflect.ValueOf(spec), reflect.ValueOf(*c), "Spec"); p != "" {
		t.Fatalf("the clone shares %s with the original", p)
	}
}

// A Store remembers the bytes it decoded: what Load hands out is the
// caller's to change, a changed file is decoded again, and a broken one is
// refused even after a good one was read.
func TestLoadDecodesOnlyChangedBytes(t *testing.T) {
	spec := NewSpec("vm", emulator.ArchX86_64)
	spec.NICs = []NICSpec{{Mode: emulator.NetUser, Model: "virtio-net-pci", Forwards: []Forward{{Proto: "tcp", HostAddr: "127.0.0.1", HostPort: 2222, GuestPort: 22}}}}
	s := testStore(t, spec)
	first, err := s.Load("vm")
	if err != nil {
		t.Fatal(err)
	}
	first.Notes = "changed by the caller"
	first.NICs[0].Forwards[0].HostPort = 1
	second, err := s.Load("vm")
	if err != nil {
		t.Fatal(err)
	}
	if second.Notes != "" || second.NICs[0].Forwards[0].HostPort != 2222 {
		t.Fatalf("a caller's change reached the next Load: %+v", second)
	}

	path := s.Paths("vm").Spec
	spec.Memory = 3 * GiB
	data, err := encodeSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := s.Load("vm")
	if err != nil {
		t.Fatal(err)
	}
	if third.Memory != 3*GiB {
		t.Fatalf("memory = %v after the file changed, want 3G", third.Memory)
	}

	if err := os.WriteFile(path, []byte(strings.Replace(string(data), "memory", "memroy", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("vm"); err == nil || !strings.Contains(err.Error(), "memroy") {
		t.Fatalf("Load of a file with an unknown key = %v, want the key named", err)
	}
}
