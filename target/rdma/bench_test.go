package rdma

import (
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
)

// BenchmarkRead4KQD32 keeps 32 4 KiB reads in flight on one queue over the
// fake provider: what the transport costs per command (the fake's own
// work included; run with -benchmem and a profile to see the target's).
func BenchmarkRead4KQD32(b *testing.B) {
	benchIO(b, nvmeof.NVMRead, 4096, false)
}

// BenchmarkWrite4KInCapsuleQD32 is the same with 4 KiB in-capsule writes.
func BenchmarkWrite4KInCapsuleQD32(b *testing.B) {
	benchIO(b, nvmeof.NVMWrite, 4096, true)
}

func benchIO(b *testing.B, op uint8, size int, inline bool) {
	tt := startTarget(b)
	_, cntlid := tt.controller(b)
	const depth = 32
	q := tt.ioQueue(b, cntlid, 1, depth)
	cmds := make([]cmd, depth)
	for i := range cmds {
		cmds[i] = rw(op, uint64(i)*uint64(size/512), uint32(size/512))
		buf := q.data[i*size : (i+1)*size]
		if inline {
			cmds[i].inline = buf
		} else {
			cmds[i].keyed = buf
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	inflight := 0
	for i := range depth {
		q.submit(&cmds[i], uint16(i))
		inflight++
	}
	for n := depth; n < b.N+depth; n++ {
		cqe, _, err := q.next()
		if err != nil {
			b.Fatal(err)
		}
		inflight--
		if n < b.N {
			q.submit(&cmds[cqe.CID()], cqe.CID())
			inflight++
		}
	}
	for ; inflight > 0; inflight-- {
		if _, _, err := q.next(); err != nil {
			b.Fatal(err)
		}
	}
}
