package nvmeof

import (
	"errors"
	"hash/crc32"
	"testing"
)

func TestPDUConstants(t *testing.T) {
	// enum nvme_tcp_pdu_type, nvme_tcp_pdu_flags, nvme_tcp_digest_option and
	// nvme_tcp_fatal_error_status of include/linux/nvme-tcp.h.
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"ICReq", PDUICReq, 0}, {"ICResp", PDUICResp, 1}, {"H2CTermReq", PDUH2CTermReq, 2},
		{"C2HTermReq", PDUC2HTermReq, 3}, {"CapsuleCmd", PDUCapsuleCmd, 4}, {"CapsuleRsp", PDUCapsuleRsp, 5},
		{"H2CData", PDUH2CData, 6}, {"C2HData", PDUC2HData, 7}, {"R2T", PDUR2T, 9},
		{"HDGST", FlagHDGST, 1}, {"DDGST", FlagDDGST, 2}, {"DataLast", FlagDataLast, 4}, {"DataSuccess", FlagDataSuccess, 8},
		{"DigestHeader", DigestHeader, 1}, {"DigestData", DigestData, 2},
		{"FESInvalidHeader", FESInvalidHeader, 1}, {"FESSequenceError", FESSequenceError, 2},
		{"FESHeaderDigest", FESHeaderDigest, 3}, {"FESDataOutOfRange", FESDataOutOfRange, 4},
		{"FESDataLimitExceeded", FESDataLimitExceeded, 5}, {"FESUnsupportedParam", FESUnsupportedParam, 6},
		{"MaxHLen", MaxHLen, 128}, {"TermReqMaxData", TermReqMaxData, 152 - 24},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

func TestHeader(t *testing.T) {
	b := []byte{PDUCapsuleCmd, FlagHDGST | FlagDDGST, 72, 76, 0x50, 0x10, 0, 0, 0xFF}
	h, err := ParseHeader(b)
	want := Header{Type: 4, Flags: 3, HLen: 72, PDO: 76, PLen: 0x1050}
	if err != nil || h != want {
		t.Fatalf("ParseHeader = %+v, %v", h, err)
	}
	out := make([]byte, 8)
	PutHeader(out, h)
	if string(out) != string(b[:8]) {
		t.Errorf("PutHeader = % x", out)
	}
	if _, err := ParseHeader(b[:7]); err == nil {
		t.Error("parsed a 7-byte header")
	}
}

func TestHeaderCheck(t *testing.T) {
	const maxPLen = 1 << 20
	type want struct {
		fes    uint16 // 0: valid
		fei    uint32
		layout Layout
	}
	for _, tc := range []struct {
		name         string
		h            Header
		hdgst, ddgst bool
		want         want
	}{
		// Valid PDUs of each type, with and without digests.
		{"ICReq", Header{Type: PDUICReq, HLen: 128, PLen: 128}, false, false, want{}},
		{"ICResp", Header{Type: PDUICResp, HLen: 128, PLen: 128}, false, false, want{}},
		{"ICReq digests negotiated later", Header{Type: PDUICReq, HLen: 128, PLen: 128}, true, true, want{}},
		{"CapsuleCmd", Header{Type: PDUCapsuleCmd, HLen: 72, PLen: 72}, false, false, want{}},
		{"CapsuleCmd HDGST", Header{Type: PDUCapsuleCmd, Flags: FlagHDGST, HLen: 72, PLen: 76}, true, false, want{layout: Layout{HDigest: true}}},
		{"CapsuleCmd in-capsule data", Header{Type: PDUCapsuleCmd, HLen: 72, PDO: 72, PLen: 72 + 4096}, false, false,
			want{layout: Layout{DataOff: 72, DataLen: 4096}}},
		{"CapsuleCmd data, both digests", Header{Type: PDUCapsuleCmd, Flags: FlagHDGST | FlagDDGST, HLen: 72, PDO: 76, PLen: 76 + 4096 + 4}, true, true,
			want{layout: Layout{HDigest: true, DDigest: true, DataOff: 76, DataLen: 4096}}},
		{"CapsuleCmd data, DDGST only", Header{Type: PDUCapsuleCmd, Flags: FlagDDGST, HLen: 72, PDO: 72, PLen: 72 + 512 + 4}, false, true,
			want{layout: Layout{DDigest: true, DataOff: 72, DataLen: 512}}},
		{"CapsuleCmd no data with DDGST negotiated", Header{Type: PDUCapsuleCmd, HLen: 72, PLen: 72}, false, true, want{}},
		{"CapsuleCmd aligned PDO", Header{Type: PDUCapsuleCmd, HLen: 72, PDO: 128, PLen: 128 + 8}, false, false,
			want{layout: Layout{DataOff: 128, DataLen: 8}}},
		{"CapsuleRsp", Header{Type: PDUCapsuleRsp, HLen: 24, PLen: 24}, false, false, want{}},
		{"CapsuleRsp HDGST", Header{Type: PDUCapsuleRsp, Flags: FlagHDGST, HLen: 24, PLen: 28}, true, true, want{layout: Layout{HDigest: true}}},
		{"H2CData", Header{Type: PDUH2CData, Flags: FlagDataLast, HLen: 24, PDO: 24, PLen: 24 + 8192}, false, false,
			want{layout: Layout{DataOff: 24, DataLen: 8192}}},
		{"C2HData digests", Header{Type: PDUC2HData, Flags: FlagHDGST | FlagDDGST | FlagDataLast | FlagDataSuccess, HLen: 24, PDO: 28, PLen: 28 + 100 + 4}, true, true,
			want{layout: Layout{HDigest: true, DDigest: true, DataOff: 28, DataLen: 100}}},
		{"R2T", Header{Type: PDUR2T, HLen: 24, PLen: 24}, false, false, want{}},
		{"R2T HDGST", Header{Type: PDUR2T, Flags: FlagHDGST, HLen: 24, PLen: 28}, true, false, want{layout: Layout{HDigest: true}}},
		{"H2CTermReq", Header{Type: PDUH2CTermReq, HLen: 24, PLen: 24}, false, false, want{}},
		{"C2HTermReq with header", Header{Type: PDUC2HTermReq, HLen: 24, PLen: 24 + 72}, true, true,
			want{layout: Layout{DataOff: 24, DataLen: 72}}},
		{"TermReq 152 bytes", Header{Type: PDUH2CTermReq, HLen: 24, PLen: 152}, false, false,
			want{layout: Layout{DataOff: 24, DataLen: 128}}},

		// Violations.
		{"unknown type 8", Header{Type: 8, HLen: 24, PLen: 24}, false, false, want{fes: FESInvalidHeader, fei: 0}},
		{"unknown type 0xFF", Header{Type: 0xFF, HLen: 24, PLen: 24}, false, false, want{fes: FESInvalidHeader, fei: 0}},
		{"ICReq bad HLEN", Header{Type: PDUICReq, HLen: 127, PLen: 128}, false, false, want{fes: FESInvalidHeader, fei: 2}},
		{"CapsuleCmd bad HLEN", Header{Type: PDUCapsuleCmd, HLen: 76, PLen: 76}, false, false, want{fes: FESInvalidHeader, fei: 2}},
		{"R2T HLEN 0", Header{Type: PDUR2T, HLen: 0, PLen: 24}, false, false, want{fes: FESInvalidHeader, fei: 2}},
		{"HDGST flag missing", Header{Type: PDUCapsuleCmd, HLen: 72, PLen: 76}, true, false, want{fes: FESInvalidHeader, fei: 1}},
		{"HDGST flag unexpected", Header{Type: PDUCapsuleRsp, Flags: FlagHDGST, HLen: 24, PLen: 28}, false, false, want{fes: FESInvalidHeader, fei: 1}},
		{"PLEN too short", Header{Type: PDUCapsuleCmd, HLen: 72, PLen: 71}, false, false, want{fes: FESInvalidHeader, fei: 4}},
		{"PLEN misses HDGST", Header{Type: PDUCapsuleRsp, Flags: FlagHDGST, HLen: 24, PLen: 24}, true, false, want{fes: FESInvalidHeader, fei: 4}},
		{"PLEN 0", Header{Type: PDUR2T, HLen: 24}, false, false, want{fes: FESInvalidHeader, fei: 4}},
		{"PLEN too long", Header{Type: PDUH2CData, HLen: 24, PDO: 24, PLen: maxPLen + 1}, false, false, want{fes: FESDataLimitExceeded, fei: 4}},
		{"PLEN 4 GiB", Header{Type: PDUH2CData, HLen: 24, PDO: 24, PLen: 0xFFFFFFFF}, false, false, want{fes: FESDataLimitExceeded, fei: 4}},
		{"data on CapsuleRsp", Header{Type: PDUCapsuleRsp, HLen: 24, PDO: 24, PLen: 32}, false, false, want{fes: FESInvalidHeader, fei: 4}},
		{"data on R2T", Header{Type: PDUR2T, HLen: 24, PDO: 24, PLen: 32}, false, false, want{fes: FESInvalidHeader, fei: 4}},
		{"data on ICReq", Header{Type: PDUICReq, HLen: 128, PDO: 128, PLen: 132}, false, false, want{fes: FESInvalidHeader, fei: 4}},
		{"PDO inside header", Header{Type: PDUCapsuleCmd, HLen: 72, PDO: 64, PLen: 72 + 64}, false, false, want{fes: FESInvalidHeader, fei: 3}},
		{"PDO inside HDGST", Header{Type: PDUH2CData, Flags: FlagHDGST, HLen: 24, PDO: 24, PLen: 28 + 64}, true, false, want{fes: FESInvalidHeader, fei: 3}},
		{"PDO 0 with data", Header{Type: PDUC2HData, HLen: 24, PDO: 0, PLen: 100}, false, false, want{fes: FESInvalidHeader, fei: 3}},
		{"PDO without data", Header{Type: PDUCapsuleCmd, HLen: 72, PDO: 72, PLen: 72}, false, false, want{fes: FESInvalidHeader, fei: 3}},
		{"PDO beyond PLEN", Header{Type: PDUH2CData, HLen: 24, PDO: 200, PLen: 100}, false, false, want{fes: FESInvalidHeader, fei: 4}},
		{"PDO at PLEN", Header{Type: PDUH2CData, HLen: 24, PDO: 100, PLen: 100}, false, false, want{fes: FESInvalidHeader, fei: 4}},
		{"only a DDGST after PDO", Header{Type: PDUH2CData, Flags: FlagDDGST, HLen: 24, PDO: 24, PLen: 28}, false, true, want{fes: FESInvalidHeader, fei: 4}},
		{"DDGST flag missing", Header{Type: PDUH2CData, HLen: 24, PDO: 24, PLen: 24 + 16 + 4}, false, true, want{fes: FESInvalidHeader, fei: 1}},
		{"DDGST flag unexpected", Header{Type: PDUC2HData, Flags: FlagDDGST, HLen: 24, PDO: 24, PLen: 24 + 16 + 4}, false, false, want{fes: FESInvalidHeader, fei: 1}},
		{"DDGST flag without data", Header{Type: PDUCapsuleCmd, Flags: FlagDDGST, HLen: 72, PLen: 72}, false, true, want{fes: FESInvalidHeader, fei: 1}},
		{"DDGST flag on R2T", Header{Type: PDUR2T, Flags: FlagDDGST, HLen: 24, PLen: 24}, false, false, want{fes: FESInvalidHeader, fei: 1}},
		{"TermReq 153 bytes", Header{Type: PDUC2HTermReq, HLen: 24, PLen: 153}, false, false, want{fes: FESInvalidHeader, fei: 4}},
		{"TermReq bad HLEN", Header{Type: PDUC2HTermReq, HLen: 28, PLen: 28}, false, false, want{fes: FESInvalidHeader, fei: 2}},
	} {
		l, err := tc.h.Check(tc.hdgst, tc.ddgst, maxPLen)
		if tc.want.fes == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			} else if l != tc.want.layout {
				t.Errorf("%s: layout %+v, want %+v", tc.name, l, tc.want.layout)
			}
			continue
		}
		var fe *FatalError
		if !errors.As(err, &fe) {
			t.Errorf("%s: err %v, want a *FatalError", tc.name, err)
			continue
		}
		if fe.FES != tc.want.fes || fe.FEI != tc.want.fei {
			t.Errorf("%s: FES %d FEI %d (%v), want FES %d FEI %d", tc.name, fe.FES, fe.FEI, err, tc.want.fes, tc.want.fei)
		}
		if l != (Layout{}) {
			t.Errorf("%s: layout %+v returned with an error", tc.name, l)
		}
	}
}

func TestExpectedHLen(t *testing.T) {
	for typ := 0; typ < 256; typ++ {
		want := map[int]uint8{0: 128, 1: 128, 2: 24, 3: 24, 4: 72, 5: 24, 6: 24, 7: 24, 9: 24}[typ]
		if got := ExpectedHLen(uint8(typ)); got != want {
			t.Errorf("ExpectedHLen(%d) = %d, want %d", typ, got, want)
		}
		wantData := typ == 2 || typ == 3 || typ == 4 || typ == 6 || typ == 7
		if HasData(uint8(typ)) != wantData {
			t.Errorf("HasData(%d) = %v", typ, !wantData)
		}
	}
}

func TestICReq(t *testing.T) {
	r := ICReq{PFV: 0, HPDA: 3, Digest: DigestHeader | DigestData, MaxR2T: 15}
	b := make([]byte, ICReqSize)
	for i := range b {
		b[i] = 0xAA
	}
	r.Encode(b)
	// struct nvme_tcp_icreq_pdu: hdr@0 pfv@8 hpda@10 digest@11 maxr2t@12 rsvd2[112]@16.
	want := map[int]byte{0: 0, 2: 128, 4: 128, 10: 3, 11: 3, 12: 15}
	for i, v := range b {
		if v != want[i] {
			t.Errorf("byte %d = %#x, want %#x", i, v, want[i])
		}
	}
	got, err := DecodeICReq(b)
	if err != nil || got != r {
		t.Errorf("round trip %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		edit func(b []byte)
		fes  uint16
		fei  uint32
	}{
		{"short", nil, FESInvalidHeader, 0},
		{"wrong type", func(b []byte) { b[0] = PDUCapsuleCmd }, FESSequenceError, 0},
		{"ICResp", func(b []byte) { b[0] = PDUICResp }, FESSequenceError, 0},
		{"HLEN", func(b []byte) { b[2] = 72 }, FESInvalidHeader, 2},
		{"PLEN", func(b []byte) { b[4] = 129 }, FESInvalidHeader, 2},
		{"PFV", func(b []byte) { b[8] = 1 }, FESUnsupportedParam, 8},
		{"HPDA", func(b []byte) { b[10] = 32 }, FESUnsupportedParam, 10},
		{"digest", func(b []byte) { b[11] = 4 }, FESUnsupportedParam, 11},
	} {
		buf := make([]byte, ICReqSize)
		r.Encode(buf)
		if tc.edit == nil {
			buf = buf[:127]
		} else {
			tc.edit(buf)
		}
		_, err := DecodeICReq(buf)
		var fe *FatalError
		if !errors.As(err, &fe) || fe.FES != tc.fes || fe.FEI != tc.fei {
			t.Errorf("%s: err %v, want FES %d FEI %d", tc.name, err, tc.fes, tc.fei)
		}
	}
}

func TestICResp(t *testing.T) {
	r := ICResp{CPDA: 0, Digest: DigestData, MaxData: 128 << 10}
	b := make([]byte, ICRespSize)
	r.Encode(b)
	// struct nvme_tcp_icresp_pdu: hdr@0 pfv@8 cpda@10 digest@11 maxdata@12.
	if b[0] != PDUICResp || b[2] != 128 || b[4] != 128 || b[11] != 2 || b[14] != 2 {
		t.Errorf("layout % x", b[:16])
	}
	got, err := DecodeICResp(b)
	if err != nil || got != r {
		t.Errorf("round trip %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		r    ICResp
	}{
		{"PFV", ICResp{PFV: 1, MaxData: 4096}},
		{"MAXH2CDATA small", ICResp{MaxData: 4092}},
		{"MAXH2CDATA not dwords", ICResp{MaxData: 4097}},
		{"CPDA", ICResp{CPDA: 32, MaxData: 4096}},
	} {
		tc.r.Encode(b)
		if _, err := DecodeICResp(b); err == nil {
			t.Errorf("%s: decoded", tc.name)
		}
	}
	r.Encode(b)
	b[0] = PDUICReq
	if _, err := DecodeICResp(b); err == nil {
		t.Error("decoded an ICReq as ICResp")
	}
	if _, err := DecodeICResp(b[:100]); err == nil {
		t.Error("decoded 100 bytes")
	}
}

func TestDataPDU(t *testing.T) {
	d := DataPDU{CCCID: 0x1234, TTag: 0x5678, Offset: 0x9ABCDEF0, Length: 0x1000}
	b := make([]byte, DataHLen)
	for i := range b {
		b[i] = 0xEE
	}
	PutHeader(b, Header{Type: PDUR2T, HLen: R2THLen, PLen: R2THLen})
	d.Encode(b)
	// struct nvme_tcp_data_pdu / nvme_tcp_r2t_pdu: command_id@8 ttag@10 offset@12 length@16 rsvd@20.
	want := []byte{9, 0, 24, 0, 24, 0, 0, 0, 0x34, 0x12, 0x78, 0x56, 0xF0, 0xDE, 0xBC, 0x9A, 0, 0x10, 0, 0, 0, 0, 0, 0}
	if string(b) != string(want) {
		t.Errorf("R2T\n% x\nwant\n% x", b, want)
	}
	got, err := DecodeDataPDU(b)
	if err != nil || got != d {
		t.Errorf("round trip %+v, %v", got, err)
	}
	if _, err := DecodeDataPDU(b[:23]); err == nil {
		t.Error("decoded 23 bytes")
	}
}

func TestTermReq(t *testing.T) {
	bad := make([]byte, 200)
	for i := range bad {
		bad[i] = byte(i)
	}
	b := make([]byte, 200)
	n := EncodeTermReq(b, PDUC2HTermReq, TermReq{FES: FESInvalidHeader, FEI: 0x01020304}, bad[:72])
	// struct nvme_tcp_term_pdu: hdr@0 fes@8 feil@10 feiu@12 rsvd@14.
	if n != 96 || b[0] != 3 || b[2] != 24 || b[3] != 0 || b[4] != 96 || b[8] != 1 || b[10] != 4 || b[13] != 1 || b[14] != 0 || b[24] != 0 || b[95] != 71 {
		t.Errorf("n %d: % x", n, b[:28])
	}
	h, _ := ParseHeader(b)
	if l, err := h.Check(true, true, 1<<20); err != nil || l.DataOff != 24 || l.DataLen != 72 {
		t.Errorf("Check of our own TermReq: %+v, %v", l, err)
	}
	got, err := DecodeTermReq(b[:n])
	if err != nil || got != (TermReq{FES: 1, FEI: 0x01020304}) {
		t.Errorf("DecodeTermReq = %+v, %v", got, err)
	}
	// At most 128 bytes of the offending header: 152 in all.
	n = EncodeTermReq(b, PDUH2CTermReq, TermReq{FES: FESDataLimitExceeded}, bad)
	h, _ = ParseHeader(b)
	if n != 152 || h.PLen != 152 {
		t.Errorf("long TermReq: n %d PLEN %d", n, h.PLen)
	}
	if _, err := h.Check(false, false, 1<<20); err != nil {
		t.Errorf("Check of a 152-byte TermReq: %v", err)
	}
	if n := EncodeTermReq(b, PDUH2CTermReq, TermReq{}, nil); n != 24 {
		t.Errorf("empty TermReq: n %d", n)
	}
	if _, err := DecodeTermReq(b[:23]); err == nil {
		t.Error("decoded 23 bytes")
	}
}

func TestFatalError(t *testing.T) {
	_, err := Header{Type: 0x42}.Check(false, false, 1<<20)
	var fe *FatalError
	if !errors.As(err, &fe) || fe.Error() != "nvme/tcp fatal error 0x1 at 0: unknown PDU type 0x42" {
		t.Errorf("err = %v", err)
	}
}

func TestPadTo(t *testing.T) {
	for _, tc := range []struct {
		hlen  uint32
		hdgst bool
		cpda  uint8
		want  uint32
	}{
		{72, false, 0, 72},
		{72, true, 0, 76},
		{24, true, 0, 28},
		{72, false, 7, 96}, // 32-byte alignment
		{72, true, 15, 128},
		{24, false, 31, 128},
		{72, true, 31, 128},
	} {
		if got := PadTo(tc.hlen, tc.hdgst, tc.cpda); got != tc.want {
			t.Errorf("PadTo(%d, %v, %d) = %d, want %d", tc.hlen, tc.hdgst, tc.cpda, got, tc.want)
		}
	}
}

func TestDigest(t *testing.T) {
	// The CRC-32C check value (RFC 3720 B.4, and every CRC catalogue).
	if got := Digest([]byte("123456789")); got != 0xE3069283 {
		t.Errorf("Digest(123456789) = %#x, want 0xe3069283", got)
	}
	// RFC 3720 B.4: 32 bytes of zeros and of ones.
	if got := Digest(make([]byte, 32)); got != 0x8A9136AA {
		t.Errorf("Digest(32 zeros) = %#x, want 0x8a9136aa", got)
	}
	ones := make([]byte, 32)
	for i := range ones {
		ones[i] = 0xFF
	}
	if got := Digest(ones); got != 0x62A8AB43 {
		t.Errorf("Digest(32 ones) = %#x, want 0x62a8ab43", got)
	}
	if got := DigestUpdate(Digest([]byte("1234")), []byte("56789")); got != 0xE3069283 {
		t.Errorf("DigestUpdate = %#x", got)
	}
	if Digest(nil) != 0 {
		t.Error("Digest(nil) != 0")
	}

	// A capsule command PDU with both digests, laid out as the kernel sends it.
	const data = 512
	pdu := make([]byte, 76+data+4)
	PutHeader(pdu, Header{Type: PDUCapsuleCmd, Flags: FlagHDGST | FlagDDGST, HLen: CapsuleCmdHLen, PDO: 76, PLen: uint32(len(pdu))})
	c := SQEView(pdu[CHSize:])
	c.SetOpcode(NVMWrite)
	c.SetCID(1)
	c.SetNSID(1)
	c.SGL().SetDataBlock(SGLInCapsule, 0, data)
	c.SetRW(0, 1)
	for i := range pdu[76 : 76+data] {
		pdu[76+i] = byte(i * 7)
	}
	PutDigest(pdu[72:], Digest(pdu[:72]))
	PutDigest(pdu[76+data:], Digest(pdu[76:76+data]))

	h, _ := ParseHeader(pdu)
	l, err := h.Check(true, true, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if GetDigest(pdu[h.HLen:]) != Digest(pdu[:h.HLen]) {
		t.Error("header digest mismatch")
	}
	end := l.DataOff + l.DataLen
	if GetDigest(pdu[end:]) != Digest(pdu[l.DataOff:end]) {
		t.Error("data digest mismatch")
	}
	// The digest is stored little-endian (put_unaligned_le32 in the kernel).
	d := crc32.Checksum(pdu[:72], crc32.MakeTable(crc32.Castagnoli))
	if pdu[72] != byte(d) || pdu[75] != byte(d>>24) {
		t.Errorf("HDGST bytes % x for %#x", pdu[72:76], d)
	}
	pdu[100] ^= 1
	if GetDigest(pdu[end:]) == Digest(pdu[l.DataOff:end]) {
		t.Error("a flipped data bit kept the digest")
	}
}
