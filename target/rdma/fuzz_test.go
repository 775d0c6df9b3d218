package rdma

import (
	"encoding/binary"
	"flag"
	"testing"

	"github.com/flashpath/flashpath/internal/fuzzcorpus"
	"github.com/flashpath/flashpath/nvmeof"
	fprdma "github.com/flashpath/flashpath/rdma"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz/FuzzCapsules from capsuleSeeds")

// frame joins capsules as FuzzCapsules reads them: each one preceded by
// its length, 2 bytes little endian.
func frame(capsules ...[]byte) []byte {
	var out []byte
	for _, c := range capsules {
		out = binary.LittleEndian.AppendUint16(out, uint16(len(c)))
		out = append(out, c...)
	}
	return out
}

func capsuleBytes(c cmd) []byte {
	sgl := c.sqe.SGL()
	if c.inline != nil {
		sgl.SetDataBlock(nvmeof.SGLInCapsule, 0, uint32(len(c.inline)))
	}
	return append(c.sqe[:], c.inline...)
}

func capsuleSeeds() map[string][]byte {
	write := rw(nvmeof.NVMWrite, 8, 8)
	write.inline = make([]byte, 4096)
	read := rw(nvmeof.NVMRead, 0, 8)
	read.sqe.SGL().SetKeyed(0x10000, 4096, 0x1234, true)
	kwrite := rw(nvmeof.NVMWrite, 0, 8)
	kwrite.sqe.SGL().SetKeyed(0x10000, 4096, 0x1234, false)
	var flush cmd
	flush.sqe.SetOpcode(nvmeof.NVMFlush)
	flush.sqe.SetNSID(1)
	var ident cmd
	ident.sqe.SetIdentify(nvmeof.CNSController, 0)
	ident.sqe.SGL().SetKeyed(0x10000, 4096, 0x1234, false)
	transport := rw(nvmeof.NVMRead, 0, 8)
	transport.sqe.SGL().SetDataBlock(nvmeof.SGLTransport, 0, 4096)
	big := rw(nvmeof.NVMRead, 0, 8)
	big.sqe.SGL().SetKeyed(0x10000, 4<<20, 0x1234, false)
	var connect cmd
	connect.sqe.SetConnect(1, 31, 0)
	connect.inline = make([]byte, nvmeof.ConnectDataSize)
	return map[string][]byte{
		"write-inline":    frame(capsuleBytes(write), capsuleBytes(flush)),
		"read-keyed":      frame(capsuleBytes(read)),
		"write-keyed":     frame(capsuleBytes(kwrite)),
		"identify-on-io":  frame(capsuleBytes(ident)),
		"transport-sgl":   frame(capsuleBytes(transport), capsuleBytes(flush)),
		"beyond-mdts":     frame(capsuleBytes(big)),
		"connect-again":   frame(capsuleBytes(connect)),
		"short":           frame(make([]byte, 12)),
		"empty":           {},
		"offset-past-end": frame(append(capsuleBytes(write)[:64:64], make([]byte, 100)...)),
	}
}

func TestWriteCapsuleSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -args -write-seeds to rewrite testdata/fuzz/FuzzCapsules")
	}
	if err := fuzzcorpus.Write("FuzzCapsules", capsuleSeeds()); err != nil {
		t.Fatal(err)
	}
}

// FuzzCapsules sends arbitrary capsules on a connected I/O queue, then a
// Flush: the target answers each with a status or ends the connection,
// never panics, never stops answering, and its other connections go on.
func FuzzCapsules(f *testing.F) {
	for _, s := range capsuleSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tt := startTarget(t)
		a, cntlid := tt.controller(t)
		q := tt.ioQueue(t, cntlid, 1, 16)
		sent := 0
		for len(b) >= 2 && sent < 8 {
			n := int(binary.LittleEndian.Uint16(b))
			b = b[2:]
			n = min(n, len(b), hostStride)
			buf := q.capsule(sent)
			copy(buf, b[:n])
			b = b[n:]
			if n >= 4 {
				binary.LittleEndian.PutUint16(buf[2:], uint16(sent)) // distinct CIDs
			}
			if err := q.qp.Post(fprdma.WR{Op: fprdma.OpSend, Local: buf[:n], Signaled: true}); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		flush := rw(nvmeof.NVMFlush, 0, 1)
		q.submit(&flush, 0xBEEF)
		for {
			cqe, _, err := q.next()
			if isDown(err) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if cqe.CID() == 0xBEEF {
				ok(t, "flush after fuzzed capsules", cqe)
				break
			}
		}
		// The admin queue, on its own connection, still answers.
		var ka cmd
		ka.sqe.SetOpcode(nvmeof.AdminKeepAlive)
		if cqe, err := a.execErr(&ka); err != nil {
			t.Fatalf("admin queue after fuzzed I/O capsules: %v", err)
		} else if !cqe.Status().OK() {
			t.Fatalf("keep alive: %v", cqe.Status())
		}
	})
}
