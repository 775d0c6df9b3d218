package nvmeof

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var writeSeeds = flag.Bool("write-seeds", false, "write the fuzz seed corpora under testdata/fuzz")

// seedCorpora are valid encodings, one slice of fuzz arguments per seed.
func seedCorpora() map[string][][]any {
	one := func(bs ...[]byte) [][]any {
		var out [][]any
		for _, b := range bs {
			out = append(out, []any{b})
		}
		return out
	}
	enc := func(n int, f func(b []byte)) []byte {
		b := make([]byte, n)
		f(b)
		return b
	}
	m := map[string][][]any{}

	for _, h := range seedHeaders() {
		for _, d := range []uint8{0, 1, 2, 3} {
			m["FuzzHeader"] = append(m["FuzzHeader"], []any{h, d, uint32(1 << 20)})
		}
	}
	m["FuzzICReq"] = one(
		enc(ICReqSize, func(b []byte) { (&ICReq{}).Encode(b) }),
		enc(ICReqSize, func(b []byte) { (&ICReq{HPDA: 31, Digest: 3, MaxR2T: 0xFFFFFFFF}).Encode(b) }),
	)
	m["FuzzICResp"] = one(
		enc(ICRespSize, func(b []byte) { (&ICResp{MaxData: 4096}).Encode(b) }),
		enc(ICRespSize, func(b []byte) { (&ICResp{CPDA: 31, Digest: 3, MaxData: 1 << 20}).Encode(b) }),
	)
	data := func(typ uint8, d DataPDU) []byte {
		return enc(DataHLen, func(b []byte) {
			PutHeader(b, Header{Type: typ, HLen: DataHLen, PDO: DataHLen, PLen: DataHLen + d.Length})
			d.Encode(b)
		})
	}
	m["FuzzDataPDU"] = one(
		data(PDUH2CData, DataPDU{CCCID: 1, TTag: 1, Length: 4096}),
		data(PDUC2HData, DataPDU{CCCID: 0xFFFF, Offset: 1 << 20, Length: 512}),
		enc(DataHLen, func(b []byte) {
			PutHeader(b, Header{Type: PDUR2T, HLen: R2THLen, PLen: R2THLen})
			(&DataPDU{CCCID: 9, TTag: 3, Offset: 0, Length: 1 << 17}).Encode(b)
		}),
	)
	term := func(typ uint8, t TermReq, n int) []byte {
		b := make([]byte, TermReqHLen+TermReqMaxData)
		return b[:EncodeTermReq(b, typ, t, bytes.Repeat([]byte{0x04}, n))]
	}
	m["FuzzTermReq"] = one(
		term(PDUH2CTermReq, TermReq{FES: FESHeaderDigest}, 0),
		term(PDUC2HTermReq, TermReq{FES: FESInvalidHeader, FEI: 3}, 72),
		term(PDUC2HTermReq, TermReq{FES: FESDataLimitExceeded, FEI: 4}, 200),
	)
	m["FuzzConnectData"] = one(
		enc(ConnectDataSize, func(b []byte) {
			_ = (&ConnectData{CntlID: CntlIDDynamic, SubNQN: DiscoveryNQN, HostNQN: "nqn.2014-08.org.nvmexpress:uuid:0"}).Encode(b)
		}),
		enc(ConnectDataSize, func(b []byte) {
			_ = (&ConnectData{HostID: [16]byte{0xFF, 15: 1}, CntlID: 1, SubNQN: strings.Repeat("s", NQNMaxLen), HostNQN: strings.Repeat("h", NQNMaxLen)}).Encode(b)
		}),
	)
	m["FuzzIdentifyController"] = one(
		enc(IdentifySize, func(b []byte) { id := testController(); _ = id.Encode(b) }),
		enc(IdentifySize, func(b []byte) {
			_ = (&IdentifyController{CntrlType: CtrlTypeDiscovery, SubNQN: DiscoveryNQN, MaxCmd: 32, SQES: 0x66, CQES: 0x44}).Encode(b)
		}),
	)
	m["FuzzIdentifyNamespace"] = one(
		enc(IdentifySize, func(b []byte) { ns := testNamespace(); _ = ns.Encode(b) }),
		enc(IdentifySize, func(b []byte) {
			ns := IdentifyNamespace{NSZE: 1, NCAP: 1, NLBAF: 63, FLBAS: 0x6F}
			for i := range ns.LBAF {
				ns.LBAF[i] = LBAFormat{MS: uint16(i), LBADS: uint8(9 + i%8), RP: uint8(i)}
			}
			_ = ns.Encode(b)
		}),
	)
	m["FuzzNSList"] = one(
		enc(IdentifySize, func(b []byte) { EncodeNSList(b, []uint32{1}, 0) }),
		enc(IdentifySize, func(b []byte) {
			ids := make([]uint32, 1024)
			for i := range ids {
				ids[i] = uint32(i + 1)
			}
			EncodeNSList(b, ids, 0)
		}),
	)
	m["FuzzNSDescList"] = one(
		enc(IdentifySize, func(b []byte) {
			_ = EncodeNSDescList(b, []NSDescriptor{{Type: NIDTNGUID, ID: bytes.Repeat([]byte{1}, 16)}, {Type: NIDTCSI, ID: []byte{0}}})
		}),
		enc(IdentifySize, func(b []byte) {
			_ = EncodeNSDescList(b, []NSDescriptor{{Type: NIDTEUI64, ID: []byte{1, 2, 3, 4, 5, 6, 7, 8}}})
			b[12], b[13] = 0x9, 3 // an unknown type after it
		}),
	)
	m["FuzzErrorLogEntry"] = one(
		enc(ErrorLogEntrySize, func(b []byte) {
			(&ErrorLogEntry{ErrorCount: 1 << 40, SQID: 3, CID: 0xFFFF, Status: StatusLBAOutOfRange, LBA: 1 << 50, NSID: 1, TrType: TrTypeRDMA}).Encode(b)
		}),
	)
	m["FuzzSMARTLog"] = one(
		enc(SMARTLogSize, func(b []byte) {
			(&SMARTLog{CriticalWarning: 0x1F, TemperatureK: 0xFFFF, AvailableSpare: 0, PercentUsed: 255, MediaErrors: 1 << 62, NumErrLogEntries: 3}).Encode(b)
		}),
	)
	m["FuzzFirmwareSlotLog"] = one(
		enc(FirmwareSlotLogSize, func(b []byte) { EncodeFirmwareSlotLog(b, "12345678") }),
	)
	m["FuzzCommandEffects"] = one(
		enc(CommandEffectsLogSize, func(b []byte) {
			var admin, io [256]uint32
			for i := range admin {
				admin[i] = uint32(i) & 0x1F
				io[i] = uint32(255-i) & 0x1F
			}
			EncodeCommandEffects(b, &admin, &io)
		}),
	)
	m["FuzzDiscoveryLog"] = one(
		enc(DiscoveryLogSize(2), func(b []byte) { _ = EncodeDiscoveryLog(b, 1, testDiscoveryEntries()) }),
		enc(DiscoveryLogSize(0), func(b []byte) { _ = EncodeDiscoveryLog(b, 0, nil) }),
	)
	dsm := enc(4*DSMRangeSize, func(b []byte) {
		for i := 0; i < 4; i++ {
			EncodeDSMRange(b, i, DSMRange{Attributes: uint32(i), NLB: uint32(8 << i), SLBA: uint64(i) << 32})
		}
	})
	m["FuzzDSMRange"] = [][]any{{dsm, 0}, {dsm, 3}, {dsm, 4}, {dsm, 1 << 59}}
	var c SQE
	sqe := func(f func()) []byte { c.Reset(); f(); return bytes.Clone(c[:]) }
	m["FuzzSQE"] = one(
		kernelRead(),
		sqe(func() { c.SetConnect(1, 127, 0) }),
		sqe(func() { c.SetPropertySet(PropCC, false, uint64(CCValue(true))) }),
		sqe(func() { c.SetIdentify(CNSController, 0) }),
		sqe(func() { c.SetGetLogPage(LogError, 0xFFFFFFFF, 1<<20, 64) }),
		sqe(func() { c.SetFeatures(FeatKeepAlive, 10000) }),
		sqe(func() { c.SetOpcode(NVMWrite); _ = c.SGL().SetKeyed(1<<40, 1<<20, 0x1234, false) }),
	)
	cqe := func(f func(c *CQE)) []byte { var c CQE; f(&c); return bytes.Clone(c[:]) }
	m["FuzzCQE"] = one(
		cqe(func(c *CQE) { c.SetCID(1); c.SetSQHD(2) }),
		cqe(func(c *CQE) {
			c.SetDW0(ConnectInvalidParam(true, ConnectDataOffHostNQN))
			c.SetStatus(StatusConnectInvalidParam | StatusDNR)
		}),
		cqe(func(c *CQE) { c.SetStatus(StatusMore | 3<<11 | StatusUnrecoveredRead); c[14] |= 1 }),
	)
	for _, a := range authSeeds() {
		m["FuzzAuthMessage"] = append(m["FuzzAuthMessage"], []any{a.Append(nil)})
	}
	m["FuzzRDMACM"] = one(
		enc(RDMACMReqSize, func(b []byte) { RDMACMReq{HRQSize: 32, HSQSize: 31}.Encode(b) }),
		enc(RDMACMReqSize, func(b []byte) { RDMACMReq{QID: 3, HRQSize: 128, HSQSize: 127, CntlID: 1}.Encode(b) }),
		enc(RDMACMRepSize, func(b []byte) { RDMACMRep{CRQSize: 128}.Encode(b) }),
		enc(RDMACMRejSize, func(b []byte) { EncodeRDMACMRej(b, RDMACMInvalidHSQSize) }),
	)
	m["FuzzResvReport"] = one(seedResvReports()...)
	m["FuzzResvLog"] = one(
		enc(ResvLogSize, func(b []byte) { (&ResvLog{Count: 1, Type: ResvLogRegPreempted, NSID: 1}).Encode(b) }),
		enc(ResvLogSize, func(b []byte) {
			(&ResvLog{Count: 1<<64 - 1, Type: ResvLogResvPreempted, Available: 255, NSID: 0xFFFFFFFF}).Encode(b)
		}),
	)
	return m
}

// seedResvReports are Reservation Reports: none registered, two (one
// holding), and one cut short of its registrants.
func seedResvReports() [][]byte {
	full := ResvReport{Gen: 7, Type: ResvWriteExclusive, Regs: 2, List: []ResvRegistrant{
		{CntlID: 0xFFFF, Holds: true, Key: 0xA, HostID: [16]byte{1, 15: 1}},
		{CntlID: 0xFFFF, Key: 0xB, HostID: [16]byte{2, 15: 2}},
	}}
	var out [][]byte
	for _, n := range []int{ResvReportHdrSize, ResvReportHdrSize + 2*ResvReportRegSize, ResvReportHdrSize + ResvReportRegSize} {
		b := make([]byte, n)
		r := full
		if n == ResvReportHdrSize {
			r = ResvReport{Gen: 1}
		}
		r.Encode(b)
		out = append(out, b)
	}
	return out
}

func marshalSeed(args []any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case uint8:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		case uint32:
			fmt.Fprintf(&b, "uint32(%d)\n", v)
		case int:
			fmt.Fprintf(&b, "int(%d)\n", v)
		default:
			panic(fmt.Sprintf("seed of type %T", a))
		}
	}
	return b.Bytes()
}

func seedName(data []byte) string {
	return fmt.Sprintf("seed-%x", sha256.Sum256(data))[:21]
}

// TestWriteFuzzSeeds writes the corpora with -write-seeds; otherwise it
// checks that every one of them is on disk, so that they cannot go stale.
func TestWriteFuzzSeeds(t *testing.T) {
	for name, seeds := range seedCorpora() {
		dir := filepath.Join("testdata", "fuzz", name)
		for _, s := range seeds {
			data := marshalSeed(s)
			path := filepath.Join(dir, seedName(data))
			if *writeSeeds {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("seed %s missing or stale (%v): run go test ./nvmeof/ -run=TestWriteFuzzSeeds -args -write-seeds", path, err)
			}
		}
	}
}
