package machine

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// writeBehindEvery is how often a file being filled is handed to writeback.
const writeBehindEvery = 50 * time.Millisecond

// writeBehind starts the kernel writing path's dirty pages to the disk while
// another process (qemu-img) is still filling it, and keeps doing so until
// the returned stop is called. A conversion then overlaps its writes with
// the disk's, and the fsync that makes the result durable waits for the
// last few pages only instead of the whole file: with plain page-cache
// writes, that fsync cost about as much as the conversion itself. It is an
// optimisation only: errors are ignored, and the caller still fsyncs.
func writeBehind(path string) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var f *os.File
		defer func() {
			if f != nil {
				f.Close()
			}
		}()
		t := time.NewTicker(writeBehindEvery)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			if f == nil {
				var err error
				if f, err = os.Open(path); err != nil {
					continue // not created yet
				}
			}
			// Start writeback of the dirty pages, without waiting for it.
			unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		}
	}()
	return func() { close(quit); <-done }
}
