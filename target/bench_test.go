package target

import (
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
)

// execSetup returns an I/O queue with a 64 MiB mem namespace and a request
// for a 4 KiB command of op, ready to Execute again and again.
func execSetup(tb testing.TB, op uint8) (*Queue, *Request) {
	tb.Helper()
	tgt := newTestTarget(tb)
	ss := addSubsys(tb, tgt, testNQN)
	addMemNS(tb, ss, 1, 64<<20, 4096)
	a := connectAdmin(tb, tgt, testNQN, hostA, hostIDA, 0)
	io := connectIO(tb, tgt, testNQN, hostA, hostIDA, a.q.Controller().ID(), 1)
	r := &Request{Cmd: rwSQE(op, 1, 8, 1), Data: make([]byte, 4096)}
	r.Cmd.SetCID(7)
	io.q.Execute(r)
	if !r.Status().OK() {
		tb.Fatalf("opcode %#x: %v", op, r.Status())
	}
	return io.q, r
}

func TestExecuteDoesNotAllocate(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   uint8
	}{{"read", nvmeof.NVMRead}, {"write", nvmeof.NVMWrite}, {"flush", nvmeof.NVMFlush}, {"write_zeroes", nvmeof.NVMWriteZeroes}} {
		t.Run(tc.name, func(t *testing.T) {
			q, r := execSetup(t, tc.op)
			allocs := testing.AllocsPerRun(200, func() { q.Execute(r) })
			if allocs != 0 {
				t.Errorf("Execute(4K %s) allocates %.1f times per call, want 0", tc.name, allocs)
			}
			if !r.Status().OK() {
				t.Errorf("status %v", r.Status())
			}
		})
	}
}

func benchExecute(b *testing.B, op uint8) {
	q, r := execSetup(b, op)
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		q.Execute(r)
	}
	if !r.Status().OK() {
		b.Fatal(r.Status())
	}
}

func BenchmarkExecuteRead4K(b *testing.B) { benchExecute(b, nvmeof.NVMRead) }

// BenchmarkExecuteRead4KBatch32 is the read with NVMe/TCP's batch clock
// (BatchClock): one clock reading per 32 commands for the statistics, and
// one more at the batch's end.
func BenchmarkExecuteRead4KBatch32(b *testing.B) {
	q, r := execSetup(b, nvmeof.NVMRead)
	q.BatchClock()
	b.SetBytes(4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q.Execute(r)
		if i++; i%32 == 0 {
			q.EndBatch()
		}
	}
	q.EndBatch()
	if !r.Status().OK() {
		b.Fatal(r.Status())
	}
}
func BenchmarkExecuteWrite4K(b *testing.B) { benchExecute(b, nvmeof.NVMWrite) }
