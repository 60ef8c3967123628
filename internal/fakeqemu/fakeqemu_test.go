package fakeqemu

import (
	"reflect"
	"testing"
)

func TestParseArgs(t *testing.T) {
	args := []string{
		"-name", "x,process=vlab-x", "-S",
		"-chardev", "socket,id=serial0,path=/run/serial.sock,server=on,wait=off",
		"-chardev", "socket,id=qmp0,path=/run/a,,b/qmp0.sock,server=on,wait=off",
		"-mon", "chardev=qmp0,mode=control",
		"-qmp", "unix:/run/qmp1.sock,server=on,wait=off",
		"-pidfile", "/run/qemu.pid",
		"-serial", "chardev:serial0",
	}
	got, err := ParseArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	want := Args{QMP: []string{"/run/qmp1.sock", "/run/a,b/qmp0.sock"}, Pidfile: "/run/qemu.pid", Paused: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseArgs = %+v, want %+v", got, want)
	}
	for _, bad := range [][]string{
		{"-mon", "chardev=nope,mode=control"},
		{"-qmp", "tcp:127.0.0.1:4444,server=on"},
		{"-pidfile"},
	} {
		if _, err := ParseArgs(bad); err == nil {
			t.Errorf("ParseArgs(%q) accepted", bad)
		}
	}
}
