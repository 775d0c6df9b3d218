package nvmeof

import "testing"

var (
	sinkU32    uint32
	sinkU64    uint64
	sinkLayout Layout
)

func capsulePDU() []byte {
	b := make([]byte, 76+4096+4)
	PutHeader(b, Header{Type: PDUCapsuleCmd, Flags: FlagHDGST | FlagDDGST, HLen: CapsuleCmdHLen, PDO: 76, PLen: uint32(len(b))})
	copy(b[CHSize:], kernelRead())
	return b
}

func parseCheck(b []byte) (Layout, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return Layout{}, err
	}
	return h.Check(true, true, 1<<20)
}

func readSQE(b []byte) uint64 {
	c := SQEView(b)
	s := c.SGL()
	return uint64(c.Opcode()) + uint64(c.CID()) + uint64(c.NSID()) + c.SLBA() + uint64(c.NLB()) +
		s.Address() + uint64(s.Length()) + uint64(s.ID())
}

// The I/O path must not allocate: parsing and checking a header, reading an
// SQE, building a CQE and computing digests.
func TestHotPathAllocs(t *testing.T) {
	pdu := capsulePDU()
	data := make([]byte, 4096)
	var cqe CQE
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"ParseHeader+Check", func() { sinkLayout, _ = parseCheck(pdu) }},
		{"SQE accessors", func() { sinkU64 = readSQE(pdu[CHSize:]) }},
		{"CQE", func() {
			cqe.SetCID(1)
			cqe.SetSQHD(2)
			cqe.SetStatus(StatusLBAOutOfRange | StatusDNR)
			sinkU32 = uint32(cqe.Status())
		}},
		{"Digest", func() { sinkU32 = Digest(data) }},
		{"DecodeDataPDU", func() { d, _ := DecodeDataPDU(pdu); sinkU32 = d.Length }},
		{"DecodeDSMRange", func() { r, _ := DecodeDSMRange(data, 3); sinkU64 = r.SLBA }},
	} {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", tc.name, n)
		}
	}
}

func BenchmarkHeaderParseCheck(b *testing.B) {
	pdu := capsulePDU()
	b.ReportAllocs()
	for b.Loop() {
		sinkLayout, _ = parseCheck(pdu)
	}
}

func BenchmarkSQEAccessors(b *testing.B) {
	pdu := capsulePDU()
	b.ReportAllocs()
	for b.Loop() {
		sinkU64 = readSQE(pdu[CHSize:])
	}
}

func benchmarkDigest(b *testing.B, n int) {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		sinkU32 = Digest(data)
	}
}

func BenchmarkDigest4K(b *testing.B)   { benchmarkDigest(b, 4<<10) }
func BenchmarkDigest128K(b *testing.B) { benchmarkDigest(b, 128<<10) }
