package bench

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// faultyEngine fails every 8th I/O with EIO.
type faultyEngine struct {
	nullEngine
	n int
}

func init() {
	RegisterEngine("test-faulty", func(cfg *EngineConfig) (Engine, error) {
		return &faultyEngine{nullEngine: nullEngine{done: make([]*IO, 0, cfg.IODepth), files: 1}}, nil
	})
}

func (e *faultyEngine) Queue(io *IO) error {
	e.n++
	if e.n%8 == 0 {
		io.Res, io.Err = 0, syscall.EIO
		e.done = append(e.done, io)
		return nil
	}
	return e.nullEngine.Queue(io)
}

// TestContinueOnError: fio's continue_on_error counts the errors of the
// classes named, reports total_err and first_error, and stops on others.
func TestContinueOnError(t *testing.T) {
	base := opts("ioengine=test-faulty", "size=256k", "bs=4k", "iodepth=4")
	if _, err := runJobs(t, append(base, opts("rw=randread")...)...); !errors.Is(err, syscall.EIO) {
		t.Fatalf("without continue_on_error: %v, want EIO", err)
	}
	if _, err := runJobs(t, append(base, opts("rw=randread", "continue_on_error=write")...)...); !errors.Is(err, syscall.EIO) {
		t.Fatalf("continue_on_error=write on reads: %v, want EIO", err)
	}
	for _, v := range []string{"read", "io", "all", "1"} {
		rep, err := runJobs(t, append(base, opts("rw=randread", "continue_on_error="+v)...)...)
		if err != nil {
			t.Fatalf("continue_on_error=%s: %v", v, err)
		}
		jr := rep.Groups[0].Jobs[0]
		if jr.TotalErr != 8 || errno(jr.FirstErr) != int(syscall.EIO) {
			t.Fatalf("continue_on_error=%s: %d errors, first %v; want 8, EIO", v, jr.TotalErr, jr.FirstErr)
		}
		if jr.Dir[DirRead].IOs != 56 {
			t.Fatalf("continue_on_error=%s: %d reads counted, want the 56 that worked", v, jr.Dir[DirRead].IOs)
		}
		j := rep.jsonDoc(false).Jobs[0]
		if j.TotalErr == nil || *j.TotalErr != 8 || *j.FirstError != int(syscall.EIO) {
			t.Fatalf("JSON total_err/first_error %v %v", j.TotalErr, j.FirstError)
		}
		var b strings.Builder
		rep.WriteTerse(&b, 3)
		if f := strings.Split(strings.TrimSpace(b.String()), ";"); len(f) != 123 || f[121] != "8" || f[122] != "5" {
			t.Fatalf("terse: %d fields, tail %q", len(f), f[len(f)-2:])
		}
	}
	if _, err := BuildJobs(nil, []Section{{Name: "x", Options: opts("continue_on_error=sometimes")}}, nil); err == nil {
		t.Fatal("continue_on_error=sometimes accepted")
	}
}

// TestContinueOnVerifyError: a corrupt block is counted, not fatal, with
// continue_on_error=verify.
func TestContinueOnVerifyError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	base := opts("ioengine=psync", "filename="+file, "size=64k", "bs=4k", "verify=crc32c")
	if _, err := runJobs(t, append(base, opts("rw=write", "do_verify=0")...)...); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 5*4096+7)
	f.Close()
	rep, err := runJobs(t, append(base, opts("rw=read", "continue_on_error=verify")...)...)
	if err != nil {
		t.Fatalf("continue_on_error=verify: %v", err)
	}
	jr := rep.Groups[0].Jobs[0]
	var ve *VerifyError
	if jr.TotalErr != 1 || !errors.As(jr.FirstErr, &ve) || ve.Offset != 5*4096 {
		t.Fatalf("%d errors, first %v; want 1 at offset %d", jr.TotalErr, jr.FirstErr, 5*4096)
	}
	if _, err := runJobs(t, append(base, opts("rw=read")...)...); !errors.As(err, &ve) {
		t.Fatalf("without continue_on_error: %v, want the verify error", err)
	}
}
