package bench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// prioEngine is the null engine noting the nice value and I/O priority
// of the thread its Queue runs on (the job's).
type prioEngine struct {
	nullEngine
	nice, class, level int
}

var lastPrioEngine *prioEngine

func init() {
	RegisterEngine("test-prio", func(cfg *EngineConfig) (Engine, error) {
		e := &prioEngine{nullEngine: nullEngine{done: make([]*IO, 0, cfg.IODepth)}}
		lastPrioEngine = e
		return e, nil
	})
}

func (e *prioEngine) Queue(io *IO) error {
	tid := unix.Gettid()
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil {
		e.nice = 20 - p // the raw system call's 40..1 for nice -20..19
	}
	if r, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, 1, uintptr(tid), 0); errno == 0 {
		e.class, e.level = int(r>>13), int(r&0x1fff)
	}
	return e.nullEngine.Queue(io)
}

// TestThreadPriority: nice= and prio=/prioclass= apply to the job's
// thread, as fio's (raising priority needs privileges; lowering does
// not), and only to it: the test's own thread keeps its priority.
func TestThreadPriority(t *testing.T) {
	before, _ := unix.Getpriority(unix.PRIO_PROCESS, 0)
	jobs := mustJobs(t, Option{"ioengine", "test-prio"}, Option{"rw", "read"}, Option{"size", "64k"})
	jobs[0].Nice, jobs[0].Prio, jobs[0].PrioClass = 5, 6, 3
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	if e := lastPrioEngine; e.nice != 5 || e.class != 3 || e.level != 6 {
		t.Errorf("job thread: nice %d, I/O class %d level %d; want 5, 3 (idle), 6", e.nice, e.class, e.level)
	}
	if after, _ := unix.Getpriority(unix.PRIO_PROCESS, 0); after != before {
		t.Errorf("the process's priority changed: %d -> %d", before, after)
	}
}

// TestUnlink: unlink=1 removes the job's file when it is done.
func TestUnlink(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	if _, err := runJobs(t, opts("ioengine=psync", "filename="+file, "size=64k", "rw=write")...); err != nil {
		t.Fatal(err)
	}
	jobs := mustJobs(t, opts("ioengine=psync", "filename="+file, "size=64k", "rw=read")...)
	jobs[0].Unlink = true
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("unlink=1: the file is still there (%v)", err)
	}
}
