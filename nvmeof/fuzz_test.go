package nvmeof

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// Every decoder has a fuzz test asserting "an error or a valid result,
// never a panic" and, where there is an encoder, that decode → encode →
// decode gives back the same value. Seed corpora made from valid encodings
// live in testdata/fuzz/FuzzXxx; regenerate them with
// go test ./nvmeof/ -run=TestWriteFuzzSeeds -args -write-seeds.

func mustFatal(t *testing.T, err error) *FatalError {
	t.Helper()
	var fe *FatalError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FatalError", err)
	}
	if fe.FES < FESInvalidHeader || fe.FES > FESUnsupportedParam {
		t.Fatalf("FES %#x out of range: %v", fe.FES, err)
	}
	return fe
}

func FuzzHeader(f *testing.F) {
	for _, s := range seedHeaders() {
		f.Add(s, uint8(3), uint32(1<<20))
	}
	f.Add([]byte{}, uint8(0), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, digests uint8, maxPLen uint32) {
		hdgst, ddgst := digests&1 != 0, digests&2 != 0
		h, err := ParseHeader(b)
		if (err != nil) != (len(b) < CHSize) {
			t.Fatalf("ParseHeader(%d bytes) err %v", len(b), err)
		}
		if err != nil {
			return
		}
		out := make([]byte, CHSize)
		PutHeader(out, h)
		if !bytes.Equal(out, b[:CHSize]) {
			t.Fatalf("PutHeader(ParseHeader(b)) = % x, want % x", out, b[:CHSize])
		}
		l, err := h.Check(hdgst, ddgst, maxPLen)
		if err != nil {
			fe := mustFatal(t, err)
			if fe.FEI > 7 {
				t.Fatalf("FEI %d outside the common header", fe.FEI)
			}
			return
		}
		// A valid layout accounts for every byte of PLEN.
		if h.HLen != ExpectedHLen(h.Type) || h.PLen > maxPLen {
			t.Fatalf("accepted %+v", h)
		}
		hlen := uint32(h.HLen)
		if l.HDigest {
			hlen += DigestSize
		}
		if l.HDigest != (hdgst && h.Type != PDUICReq && h.Type != PDUICResp && h.Type != PDUH2CTermReq && h.Type != PDUC2HTermReq) {
			t.Fatalf("HDigest %v for %+v", l.HDigest, h)
		}
		if l.DataLen == 0 {
			if l.DataOff != 0 || l.DDigest || h.PLen != hlen {
				t.Fatalf("no data but layout %+v for %+v", l, h)
			}
			return
		}
		if !HasData(h.Type) || l.DataOff < hlen {
			t.Fatalf("data in %+v at %+v", h, l)
		}
		end := uint64(l.DataOff) + uint64(l.DataLen)
		if l.DDigest {
			end += DigestSize
		}
		if end != uint64(h.PLen) {
			t.Fatalf("layout %+v ends at %d, PLEN %d", l, end, h.PLen)
		}
		if (h.Type == PDUH2CTermReq || h.Type == PDUC2HTermReq) && h.PLen > TermReqHLen+TermReqMaxData {
			t.Fatalf("TermReq of %d bytes accepted", h.PLen)
		}
	})
}

func FuzzICReq(f *testing.F) {
	b := make([]byte, ICReqSize)
	(&ICReq{HPDA: 1, Digest: DigestHeader | DigestData, MaxR2T: 3}).Encode(b)
	f.Add(b)
	f.Add(b[:CHSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeICReq(b)
		if err != nil {
			mustFatal(t, err)
			return
		}
		if r.PFV != 0 || r.HPDA > 31 || r.Digest > 3 {
			t.Fatalf("accepted %+v", r)
		}
		out := make([]byte, ICReqSize)
		r.Encode(out)
		r2, err := DecodeICReq(out)
		if err != nil || r2 != r {
			t.Fatalf("round trip %+v → %+v, %v", r, r2, err)
		}
	})
}

func FuzzICResp(f *testing.F) {
	b := make([]byte, ICRespSize)
	(&ICResp{CPDA: 0, Digest: DigestData, MaxData: 1 << 17}).Encode(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeICResp(b)
		if err != nil {
			return
		}
		if r.PFV != 0 || r.CPDA > 31 || r.MaxData < 4096 || r.MaxData%4 != 0 {
			t.Fatalf("accepted %+v", r)
		}
		out := make([]byte, ICRespSize)
		r.Encode(out)
		r2, err := DecodeICResp(out)
		if err != nil || r2 != r {
			t.Fatalf("round trip %+v → %+v, %v", r, r2, err)
		}
	})
}

func FuzzDataPDU(f *testing.F) {
	b := make([]byte, DataHLen)
	PutHeader(b, Header{Type: PDUC2HData, Flags: FlagDataLast, HLen: DataHLen, PDO: DataHLen, PLen: DataHLen + 4096})
	(&DataPDU{CCCID: 7, TTag: 1, Offset: 8192, Length: 4096}).Encode(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDataPDU(b)
		if (err != nil) != (len(b) < DataHLen) {
			t.Fatalf("DecodeDataPDU(%d bytes) err %v", len(b), err)
		}
		if err != nil {
			mustFatal(t, err)
			return
		}
		out := bytes.Clone(b[:DataHLen])
		d.Encode(out)
		d2, err := DecodeDataPDU(out)
		if err != nil || d2 != d {
			t.Fatalf("round trip %+v → %+v, %v", d, d2, err)
		}
		if !bytes.Equal(out[:20], b[:20]) {
			t.Fatalf("Encode changed the PSH: % x → % x", b[:20], out[:20])
		}
	})
}

func FuzzTermReq(f *testing.F) {
	b := make([]byte, TermReqHLen+TermReqMaxData)
	n := EncodeTermReq(b, PDUC2HTermReq, TermReq{FES: FESInvalidHeader, FEI: 2}, bytes.Repeat([]byte{4}, 72))
	f.Add(b[:n])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeTermReq(b)
		if (err != nil) != (len(b) < TermReqHLen) {
			t.Fatalf("DecodeTermReq(%d bytes) err %v", len(b), err)
		}
		if err != nil {
			return
		}
		out := make([]byte, TermReqHLen+TermReqMaxData)
		n := EncodeTermReq(out, PDUH2CTermReq, r, b[TermReqHLen:])
		if n != TermReqHLen+min(len(b)-TermReqHLen, TermReqMaxData) {
			t.Fatalf("EncodeTermReq returned %d for %d bytes", n, len(b))
		}
		h, _ := ParseHeader(out)
		if _, err := h.Check(false, false, 1<<20); err != nil {
			t.Fatalf("our own TermReq fails Check: %v", err)
		}
		r2, err := DecodeTermReq(out[:n])
		if err != nil || r2 != r {
			t.Fatalf("round trip %+v → %+v, %v", r, r2, err)
		}
	})
}

func FuzzConnectData(f *testing.F) {
	b := make([]byte, ConnectDataSize)
	_ = (&ConnectData{HostID: [16]byte{1}, CntlID: CntlIDDynamic, SubNQN: DiscoveryNQN, HostNQN: "nqn.2014-08.org.nvmexpress:uuid:1"}).Encode(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeConnectData(b)
		if err != nil {
			return
		}
		if len(d.SubNQN) > NQNMaxLen || len(d.HostNQN) > NQNMaxLen ||
			bytes.IndexByte([]byte(d.SubNQN), 0) >= 0 || bytes.IndexByte([]byte(d.HostNQN), 0) >= 0 {
			t.Fatalf("accepted %+v", d)
		}
		out := make([]byte, ConnectDataSize)
		if err := d.Encode(out); err != nil {
			t.Fatalf("Encode of decoded data: %v", err)
		}
		d2, err := DecodeConnectData(out)
		if err != nil || d2 != d {
			t.Fatalf("round trip %+v → %+v, %v", d, d2, err)
		}
	})
}

func FuzzIdentifyController(f *testing.F) {
	b := make([]byte, IdentifySize)
	id := testController()
	_ = id.Encode(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := DecodeIdentifyController(b)
		if err != nil {
			return
		}
		_ = id.MaxTransfer()
		out := make([]byte, IdentifySize)
		if err := id.Encode(out); err != nil {
			if len(id.SubNQN) > 255 {
				return // an unterminated SUBNQN decodes, but is not ours to send
			}
			t.Fatalf("Encode of decoded structure: %v", err)
		}
		id2, err := DecodeIdentifyController(out)
		if err != nil || !reflect.DeepEqual(id2, id) {
			t.Fatalf("round trip\n%+v\n%+v, %v", id, id2, err)
		}
	})
}

func FuzzIdentifyNamespace(f *testing.F) {
	b := make([]byte, IdentifySize)
	ns := testNamespace()
	_ = ns.Encode(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		ns, err := DecodeIdentifyNamespace(b)
		if err != nil {
			return
		}
		if bs := ns.BlockSize(); bs != 0 && (bs < 512 || bs > 1<<16 || bs&(bs-1) != 0) {
			t.Fatalf("BlockSize %d", bs)
		}
		out := make([]byte, IdentifySize)
		if err := ns.Encode(out); err != nil {
			t.Fatal(err)
		}
		ns2, err := DecodeIdentifyNamespace(out)
		if err != nil || !reflect.DeepEqual(ns2, ns) {
			t.Fatalf("round trip\n%+v\n%+v, %v", ns, ns2, err)
		}
	})
}

func FuzzNSList(f *testing.F) {
	b := make([]byte, IdentifySize)
	EncodeNSList(b, []uint32{1, 2, 3, 0xFFFFFFFE}, 0)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := DecodeNSList(b)
		if err != nil {
			return
		}
		if len(ids) > IdentifySize/4 {
			t.Fatalf("%d ids", len(ids))
		}
		out := make([]byte, IdentifySize)
		EncodeNSList(out, ids, 0)
		ids2, err := DecodeNSList(out)
		if err != nil || !reflect.DeepEqual(ids2, ids) {
			t.Fatalf("round trip %v → %v, %v", ids, ids2, err)
		}
	})
}

func FuzzNSDescList(f *testing.F) {
	b := make([]byte, IdentifySize)
	_ = EncodeNSDescList(b, []NSDescriptor{
		{Type: NIDTEUI64, ID: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{Type: NIDTUUID, ID: bytes.Repeat([]byte{9}, 16)},
		{Type: NIDTCSI, ID: []byte{0}},
	})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := DecodeNSDescList(b)
		if err != nil {
			return
		}
		known := true
		total := 0
		for _, d := range ds {
			if d.Type == 0 {
				t.Fatal("decoded a descriptor of type 0")
			}
			if nidLen(d.Type) < 0 {
				known = false
			} else if nidLen(d.Type) != len(d.ID) {
				t.Fatalf("type %d with %d bytes", d.Type, len(d.ID))
			}
			total += 4 + len(d.ID)
		}
		if total > IdentifySize {
			t.Fatalf("%d bytes of descriptors", total)
		}
		if !known {
			return // skipped over on decode, refused on encode
		}
		out := make([]byte, IdentifySize)
		if err := EncodeNSDescList(out, ds); err != nil {
			t.Fatal(err)
		}
		ds2, err := DecodeNSDescList(out)
		if err != nil || !reflect.DeepEqual(ds2, ds) {
			t.Fatalf("round trip %v → %v, %v", ds, ds2, err)
		}
	})
}

func FuzzErrorLogEntry(f *testing.F) {
	b := make([]byte, ErrorLogEntrySize)
	(&ErrorLogEntry{ErrorCount: 1, SQID: 1, CID: 2, Status: StatusInvalidField | StatusDNR, ParamLoc: 40, NSID: 1, TrType: TrTypeTCP}).Encode(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeErrorLogEntry(b)
		if err != nil {
			return
		}
		out := make([]byte, ErrorLogEntrySize)
		e.Encode(out)
		e2, err := DecodeErrorLogEntry(out)
		if err != nil || e2 != e {
			t.Fatalf("round trip %+v → %+v, %v", e, e2, err)
		}
	})
}

func FuzzSMARTLog(f *testing.F) {
	b := make([]byte, SMARTLogSize)
	(&SMARTLog{TemperatureK: 300, AvailableSpare: 100, SpareThreshold: 10, DataUnitsRead: 5, HostWrites: 9, PowerCycles: 1}).Encode(b)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSMARTLog(b)
		if err != nil {
			return
		}
		out := make([]byte, SMARTLogSize)
		s.Encode(out)
		s2, err := DecodeSMARTLog(out)
		if err != nil || s2 != s {
			t.Fatalf("round trip %+v → %+v, %v", s, s2, err)
		}
	})
}

func FuzzFirmwareSlotLog(f *testing.F) {
	b := make([]byte, FirmwareSlotLogSize)
	EncodeFirmwareSlotLog(b, "1.0")
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		active, revs, err := DecodeFirmwareSlotLog(b)
		if err != nil {
			return
		}
		if active > 7 {
			t.Fatalf("active slot %d", active)
		}
		for _, r := range revs {
			if len(r) > 8 {
				t.Fatalf("revision %q", r)
			}
		}
		out := make([]byte, FirmwareSlotLogSize)
		EncodeFirmwareSlotLog(out, revs[0])
		a2, revs2, err := DecodeFirmwareSlotLog(out)
		if err != nil || a2 != 1 || revs2[0] != revs[0] {
			t.Fatalf("round trip of slot 1 %q → %d %q, %v", revs[0], a2, revs2[0], err)
		}
	})
}

func FuzzCommandEffects(f *testing.F) {
	var admin, io [256]uint32
	admin[AdminIdentify] = CSECSUPP
	io[NVMWrite] = CSECSUPP | CSELBCC
	b := make([]byte, CommandEffectsLogSize)
	EncodeCommandEffects(b, &admin, &io)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		admin, io, err := DecodeCommandEffects(b)
		if err != nil {
			return
		}
		out := make([]byte, CommandEffectsLogSize)
		EncodeCommandEffects(out, &admin, &io)
		if !bytes.Equal(out[:2048], b[:2048]) {
			t.Fatal("re-encoded ACS/IOCS differ")
		}
		a2, i2, err := DecodeCommandEffects(out)
		if err != nil || a2 != admin || i2 != io {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzDiscoveryLog(f *testing.F) {
	entries := testDiscoveryEntries()
	b := make([]byte, DiscoveryLogSize(len(entries)))
	_ = EncodeDiscoveryLog(b, 7, entries)
	f.Add(b)
	f.Add(b[:DiscoveryHeaderSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeDiscoveryLog(b)
		if err != nil {
			return
		}
		if uint64(len(l.Entries)) > l.NumRec || len(l.Entries) > (len(b)-DiscoveryHeaderSize)/DiscoveryEntrySize {
			t.Fatalf("%d entries from NUMREC %d and %d bytes", len(l.Entries), l.NumRec, len(b))
		}
		out := make([]byte, DiscoveryLogSize(len(l.Entries)))
		if err := EncodeDiscoveryLog(out, l.GenCtr, l.Entries); err != nil {
			t.Fatalf("Encode of decoded log: %v", err)
		}
		l2, err := DecodeDiscoveryLog(out)
		if err != nil || l2.GenCtr != l.GenCtr || l2.NumRec != uint64(len(l.Entries)) || !reflect.DeepEqual(l2.Entries, l.Entries) {
			t.Fatalf("round trip\n%+v\n%+v, %v", l, l2, err)
		}
	})
}

func FuzzDSMRange(f *testing.F) {
	b := make([]byte, 2*DSMRangeSize)
	EncodeDSMRange(b, 0, DSMRange{NLB: 8, SLBA: 0})
	EncodeDSMRange(b, 1, DSMRange{Attributes: 1, NLB: 1 << 20, SLBA: 1 << 40})
	f.Add(b, 1)
	f.Add(b, -1)
	f.Add(b, 1<<59)
	f.Add(b, 1<<60)
	f.Fuzz(func(t *testing.T, b []byte, i int) {
		r, err := DecodeDSMRange(b, i)
		if (err != nil) != (i < 0 || i >= len(b)/DSMRangeSize) {
			t.Fatalf("DecodeDSMRange(%d bytes, %d) err %v", len(b), i, err)
		}
		if err != nil {
			return
		}
		out := make([]byte, len(b))
		EncodeDSMRange(out, i, r)
		if !bytes.Equal(out[i*DSMRangeSize:(i+1)*DSMRangeSize], b[i*DSMRangeSize:(i+1)*DSMRangeSize]) {
			t.Fatal("re-encoded range differs")
		}
		r2, err := DecodeDSMRange(out, i)
		if err != nil || r2 != r {
			t.Fatalf("round trip %+v → %+v, %v", r, r2, err)
		}
	})
}

func FuzzSQE(f *testing.F) {
	f.Add(kernelRead())
	var c SQE
	c.SetConnect(0, 31, 5000)
	f.Add(bytes.Clone(c[:]))
	c.Reset()
	c.SetGetLogPage(LogDiscovery, 0, 4096, 0)
	f.Add(bytes.Clone(c[:]))
	c.Reset()
	_ = c.SGL().SetKeyed(0x1000, 1<<24-1, 0xAABBCCDD, true)
	f.Add(bytes.Clone(c[:]))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := SQEView(b)
		if (c == nil) != (len(b) < SQESize) {
			t.Fatalf("SQEView(%d bytes) = %v", len(b), c)
		}
		if c == nil {
			return
		}
		orig := *c
		// Every accessor reads without panicking, and writing back what it
		// read leaves the entry unchanged.
		c.SetOpcode(c.Opcode())
		c.SetFlags(c.Flags())
		c.SetCID(c.CID())
		c.SetNSID(c.NSID())
		c.SetFCType(c.FCType())
		for n := 0; n < 16; n++ {
			c.SetCDW(n, c.CDW(n))
		}
		c.SetFUA(c.FUA())
		if *c != orig {
			t.Fatal("set(get()) changed the entry")
		}
		_, _, _, _, _ = c.PSDT(), c.SLBA(), c.NLB(), c.RecFmt(), c.QID()
		_, _, _, _ = c.SQSize(), c.CAttr(), c.KATO(), c.PropAttrib()
		_, _, _, _, _ = c.PropOffset(), c.PropValue(), c.CNS(), c.CNTID(), c.CSI()
		_, _, _, _, _ = c.LID(), c.LSP(), c.RAE(), c.LogOffset(), c.FID()
		_, _ = c.FeatureSel(), c.FeatureSave()
		if c.PSDT() > 3 || c.LSP() > 0x7F || c.FeatureSel() > 7 || c.PropAttrib() > 7 {
			t.Fatal("field wider than its bits")
		}
		n := c.LogNumDwords()
		if want := (uint32(le.Uint16(b[44:]))<<16 | uint32(le.Uint16(b[42:]))) + 1; n != want {
			t.Fatalf("LogNumDwords %d, want %d", n, want)
		}

		d := c.SGL()
		addr, length, id := d.Address(), d.Length(), d.ID()
		if d.Type() != id>>4 || d.SubType() != id&0xF {
			t.Fatal("type/subtype do not split the identifier")
		}
		if d.Type() == SGLTypeKeyedDataBlock {
			if length >= 1<<24 {
				t.Fatalf("keyed length %#x", length)
			}
			key := d.Key()
			var k SGLDesc
			if err := k.SetKeyed(addr, length, key, id == SGLKeyedInvalidate); err != nil {
				t.Fatal(err)
			}
			if k.Address() != addr || k.Length() != length || k.Key() != key {
				t.Fatal("keyed round trip")
			}
		} else {
			var k SGLDesc
			k.SetDataBlock(id, addr, length)
			if k.Address() != addr || k.Length() != length || k.ID() != id {
				t.Fatal("data block round trip")
			}
		}
	})
}

func FuzzCQE(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 1, 0, 0x34, 0x12, 0x05, 0x80})
	f.Add(make([]byte, 15))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := CQEView(b)
		if (c == nil) != (len(b) < CQESize) {
			t.Fatalf("CQEView(%d bytes) = %v", len(b), c)
		}
		if c == nil {
			return
		}
		phase := b[14] & 1
		s := c.Status()
		if uint16(s) != le.Uint16(b[14:])>>1 || s>>15 != 0 {
			t.Fatalf("Status %#x from % x", uint16(s), b[14:16])
		}
		_ = s.String()
		if s.Code() != s&0x7FF || s.SCT() > 7 || s.OK() != (s.SC() == 0 && s.SCT() == 0) {
			t.Fatalf("status %#x: code %#x sct %d", uint16(s), uint16(s.Code()), s.SCT())
		}
		if MakeStatus(s.SCT(), s.SC()) != s.Code() {
			t.Fatalf("MakeStatus(SCT, SC) != Code for %#x", uint16(s))
		}
		orig := *c
		c.SetDW0(c.DW0())
		c.SetDW1(c.DW1())
		c.SetSQHD(c.SQHD())
		c.SetSQID(c.SQID())
		c.SetCID(c.CID())
		c.SetStatus(c.Status())
		if b[14]&1 != 0 {
			t.Fatal("SetStatus kept the phase tag")
		}
		b[14] |= phase
		if *c != orig {
			t.Fatal("set(get()) changed the entry")
		}
	})
}

func seedHeaders() [][]byte {
	var out [][]byte
	add := func(h Header) {
		b := make([]byte, CHSize)
		PutHeader(b, h)
		out = append(out, b)
	}
	add(Header{Type: PDUICReq, HLen: 128, PLen: 128})
	add(Header{Type: PDUICResp, HLen: 128, PLen: 128})
	add(Header{Type: PDUCapsuleCmd, Flags: FlagHDGST | FlagDDGST, HLen: 72, PDO: 76, PLen: 76 + 4096 + 4})
	add(Header{Type: PDUCapsuleRsp, Flags: FlagHDGST, HLen: 24, PLen: 28})
	add(Header{Type: PDUH2CData, Flags: FlagHDGST | FlagDDGST | FlagDataLast, HLen: 24, PDO: 28, PLen: 28 + 512 + 4})
	add(Header{Type: PDUC2HData, Flags: FlagHDGST | FlagDDGST | FlagDataSuccess, HLen: 24, PDO: 28, PLen: 28 + 512 + 4})
	add(Header{Type: PDUR2T, Flags: FlagHDGST, HLen: 24, PLen: 28})
	add(Header{Type: PDUC2HTermReq, HLen: 24, PLen: 152})
	add(Header{Type: PDUH2CTermReq, HLen: 24, PLen: 24})
	return out
}

func FuzzRDMACM(f *testing.F) {
	var b [RDMACMReqSize]byte
	RDMACMReq{QID: 1, HRQSize: 128, HSQSize: 127, CntlID: 1}.Encode(b[:])
	f.Add(b[:])
	f.Add(b[:4])
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodeRDMACMReq(b)
		if (err != nil) != (len(b) < RDMACMReqSize) {
			t.Fatalf("DecodeRDMACMReq(%d bytes): %v", len(b), err)
		}
		if err == nil {
			var out [RDMACMReqSize]byte
			req.Encode(out[:])
			if again, err := DecodeRDMACMReq(out[:]); err != nil || again != req {
				t.Fatalf("round trip %+v -> %+v, %v", req, again, err)
			}
		}
		if rep, err := DecodeRDMACMRep(b); err == nil {
			var out [RDMACMRepSize]byte
			rep.Encode(out[:])
			if again, _ := DecodeRDMACMRep(out[:]); again != rep {
				t.Fatalf("round trip %+v -> %+v", rep, again)
			}
		}
		if sts, err := DecodeRDMACMRej(b); err == nil {
			_ = RDMACMStatusText(sts)
		}
	})
}

// FuzzResvReport: a Reservation Report from a target decodes without
// panicking, holds no more entries than its data and REGCTL allow, and
// encodes back to the same.
func FuzzResvReport(f *testing.F) {
	for _, b := range seedResvReports() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResvReport(b)
		if err != nil {
			return
		}
		if len(r.List) > int(r.Regs) || ResvReportHdrSize+len(r.List)*ResvReportRegSize > len(b) {
			t.Fatalf("%d entries from %d bytes, REGCTL %d", len(r.List), len(b), r.Regs)
		}
		out := make([]byte, ResvReportHdrSize+len(r.List)*ResvReportRegSize)
		if n := r.Encode(out); n != len(out) {
			t.Fatalf("encoded %d of %d bytes", n, len(out))
		}
		r2, err := DecodeResvReport(out)
		if err != nil || !reflect.DeepEqual(r2, r) {
			t.Fatalf("round trip\n%+v\n%+v, %v", r, r2, err)
		}
	})
}

// FuzzResvLog: a Reservation Notification log page decodes and encodes
// back to the same.
func FuzzResvLog(f *testing.F) {
	f.Add(make([]byte, ResvLogSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeResvLog(b)
		if err != nil {
			return
		}
		out := make([]byte, ResvLogSize)
		l.Encode(out)
		if l2, _ := DecodeResvLog(out); l2 != l {
			t.Fatalf("round trip %+v → %+v", l, l2)
		}
	})
}
