package bench

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// setThreadPriority applies nice= and prio=/prioclass= to the calling OS
// thread, as fio does for a job's thread: the scheduler's nice value
// (setpriority on the thread id) and the I/O priority (ioprio_set).
// The caller keeps the goroutine locked to the thread until it exits, so
// that the thread is retired with the job and no other goroutine runs
// at its priority.
func setThreadPriority(j *Job) error {
	tid := unix.Gettid()
	if j.Nice != 0 {
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, j.Nice); err != nil {
			return fmt.Errorf("option nice: %w (a negative nice needs CAP_SYS_NICE)", os.NewSyscallError("setpriority", err))
		}
	}
	if j.Prio >= 0 || j.PrioClass >= 0 {
		// fio: prio alone is in the best-effort class, prioclass alone at
		// level 0.
		class, level := j.PrioClass, max(j.Prio, 0)
		if class < 0 {
			class = ioprioClassBE
		}
		const ioprioWhoProcess, ioprioClassShift = 1, 13
		if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(class<<ioprioClassShift|level)); e != 0 {
			return fmt.Errorf("option prio: %w (the realtime class needs CAP_SYS_ADMIN)", os.NewSyscallError("ioprio_set", e))
		}
	}
	return nil
}

const ioprioClassBE = 2
