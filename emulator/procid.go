package emulator

import "time"

// Identify returns the Process record of a running child that is not QEMU
// (a helper such as passt started beside it), so it can be found again,
// and told from a reused PID, by Check. binary is what was started.
func Identify(pid int, binary string) (Process, error) {
	boot, err := BootID()
	if err != nil {
		return Process{}, err
	}
	st, err := readProcStat(pid)
	if err != nil {
		return Process{}, err
	}
	return Process{PID: pid, BootID: boot, StartTicks: st.startTicks, Binary: binary, StartedAt: time.Now()}, nil
}
