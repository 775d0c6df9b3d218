package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func tv(t unix.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}

// threadCPU is the user and system time of the calling OS thread.
func threadCPU() (usr, sys time.Duration) {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0, 0
	}
	return tv(ru.Utime), tv(ru.Stime)
}

// threadRusage is the minor and major page faults and the context
// switches of the calling OS thread (fio's minf, majf, ctx).
func threadRusage() (minf, majf, ctx uint64) {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0, 0, 0
	}
	return uint64(ru.Minflt), uint64(ru.Majflt), uint64(ru.Nvcsw + ru.Nivcsw)
}

// processCPU is the user and system time of this process, all threads.
func processCPU() (usr, sys time.Duration, ctx uint64) {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0, 0, 0
	}
	return tv(ru.Utime), tv(ru.Stime), uint64(ru.Nvcsw + ru.Nivcsw)
}

// pidCPU reads another process's user and system time from /proc.
func pidCPU(pid int) (usr, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat times", pid)
	}
	const clkTck = 100 // USER_HZ, fixed at 100 in the Linux ABI for /proc
	tick := time.Second / clkTck
	return time.Duration(ut) * tick, time.Duration(st) * tick, nil
}

func isTerminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	return err == nil
}

// pinThread restricts the calling (locked) thread to cpus and returns
// the function that restores its former affinity, to call before the
// thread is unlocked and goes back to the runtime's pool.
func pinThread(cpus []int) (restore func(), err error) {
	var old, set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	for _, c := range cpus {
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_setaffinity %v: %w (are those CPUs online and allowed to this process?)", cpus, err)
	}
	return func() { unix.SchedSetaffinity(0, &old) }, nil
}
