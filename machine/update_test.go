package machine

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"vlab/emulator"
	"vlab/internal/fakeqemu"
)

// Two vlab processes (two Stores on one library) changing one VM at the same
// time: every change lands, none is lost to the other's stale copy.
func TestConcurrentSpecChangesAllLand(t *testing.T) {
	a := fakeStore(t, fakeqemu.ModeNormal)
	b, err := Open(a.dirs)
	if err != nil {
		t.Fatal(err)
	}
	b.host = a.host
	spec := NewSpec("vm", emulator.ArchX86_64)
	spec.Display = emulator.DisplayNone
	spec.NICs = []NICSpec{{Mode: emulator.NetUser}}
	if err := a.Create(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	const rounds = 30
	var wg sync.WaitGroup
	errs := make(chan error, 3*rounds)
	for w, s := range []*Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				f := Forward{Proto: "tcp", HostAddr: "127.0.0.1", HostPort: 20000 + 1000*w + i, GuestPort: 80}
				if _, err := s.AddForward(context.Background(), "vm", -1, f); err != nil {
					errs <- err
				}
			}
		}()
	}
	// And an edit through Update at the same time (what `vlab edit` does).
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range rounds {
			if err := b.Update(context.Background(), "vm", func(sp *Spec) error {
				sp.CPUs = 1 + i%4
				return nil
			}); err != nil {
				errs <- err
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := a.Load("vm")
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range got.NICs[0].Forwards {
		have[f.String()] = true
	}
	for w := range 2 {
		for i := range rounds {
			f := Forward{Proto: "tcp", HostAddr: "127.0.0.1", HostPort: 20000 + 1000*w + i, GuestPort: 80}
			if !have[f.String()] {
				t.Errorf("forward %s was lost (%d of %d landed)", f, len(have), 2*rounds)
				return
			}
		}
	}
	if got.CPUs != 1+(rounds-1)%4 {
		t.Errorf("cpus %d: the last edit was lost", got.CPUs)
	}
}

// Update writes nothing when the change fails, and refuses a rename.
func TestUpdateRefusesAndKeeps(t *testing.T) {
	s := fakeStore(t, fakeqemu.ModeNormal)
	createFake(t, s, "vm")
	before, _ := s.Load("vm")
	if err := s.Update(context.Background(), "vm", func(sp *Spec) error {
		sp.CPUs = 3
		return fmt.Errorf("no")
	}); err == nil || err.Error() != "no" {
		t.Fatalf("Update returned %v, want the change's error", err)
	}
	if err := s.Update(context.Background(), "vm", func(sp *Spec) error { sp.Name = "other"; return nil }); err == nil {
		t.Fatal("rename through Update accepted")
	}
	if err := s.Update(context.Background(), "nosuch", func(*Spec) error { return nil }); err == nil {
		t.Fatal("Update of a missing vm succeeded")
	}
	after, _ := s.Load("vm")
	if after.CPUs != before.CPUs || after.Name != "vm" {
		t.Fatalf("a failed update changed the spec: %+v", after)
	}
}
