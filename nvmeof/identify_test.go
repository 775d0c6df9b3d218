package nvmeof

import (
	"reflect"
	"strings"
	"testing"
)

func testController() IdentifyController {
	return IdentifyController{
		VID: 0x1B36, SSVID: 0x1AF4,
		Serial: "FP0001", Model: "flashpath NVMe-oF controller", Firmware: "1.0",
		RAB: 6, IEEE: [3]byte{0x00, 0x14, 0x28}, CMIC: CMICMultiCtrl, MDTS: 5,
		CntlID: 0x0102, Version: VS2_0, OAES: OAESNamespaceAttr, CTRATT: CTRATTHostID128,
		CntrlType: CtrlTypeIO, FGUID: [16]byte{0xF0, 15: 0x0F},
		OACS: 0x0203, ACL: 3, AERL: 3, FRMW: 0x03, LPA: LPASmartPerNS | LPACommandEffects | LPAExtendedData, ELPE: 127,
		KAS: 1, SQES: 0x66, CQES: 0x44, MaxCmd: 128, NN: 1024,
		ONCS: ONCSDSM | ONCSWriteZeroes, FUSES: 1, FNA: 4, VWC: VWCPresent | VWCFlushBroadcast,
		AWUN: 7, AWUPF: 8, SGLS: SGLSSupported | SGLSKeyed | SGLSOffsetSupported, MNAN: 9,
		SubNQN: "nqn.2024-01.io.flashpath:sub1",
		IOCCSZ: 260, IORCSZ: 1, ICDOFF: 0, FCATT: 0, MSDBD: 1, OFCS: 1,
	}
}

// TestIdentifyControllerLayout checks every field at its offset in the
// kernel's struct nvme_id_ctrl and libnvme's nvme_id_ctrl.
func TestIdentifyControllerLayout(t *testing.T) {
	id := testController()
	b := make([]byte, IdentifySize)
	if err := id.Encode(b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		off  int
		want []byte
	}{
		{"vid", 0, []byte{0x36, 0x1B}},
		{"ssvid", 2, []byte{0xF4, 0x1A}},
		{"sn", 4, []byte("FP0001              ")},
		{"mn", 24, []byte("flashpath NVMe-oF controller            ")},
		{"fr", 64, []byte("1.0     ")},
		{"rab", 72, []byte{6}},
		{"ieee", 73, []byte{0x00, 0x14, 0x28}},
		{"cmic", 76, []byte{2}},
		{"mdts", 77, []byte{5}},
		{"cntlid", 78, []byte{0x02, 0x01}},
		{"ver", 80, []byte{0, 0, 2, 0}},
		{"oaes", 92, []byte{0, 1, 0, 0}},
		{"ctratt", 96, []byte{1, 0, 0, 0}},
		{"cntrltype", 111, []byte{1}},
		{"fguid", 112, []byte{0xF0}},
		{"fguid end", 127, []byte{0x0F}},
		{"oacs", 256, []byte{0x03, 0x02}},
		{"acl", 258, []byte{3}},
		{"aerl", 259, []byte{3}},
		{"frmw", 260, []byte{3}},
		{"lpa", 261, []byte{7}},
		{"elpe", 262, []byte{127}},
		{"npss", 263, []byte{0}},
		{"kas", 320, []byte{1, 0}},
		{"sqes", 512, []byte{0x66}},
		{"cqes", 513, []byte{0x44}},
		{"maxcmd", 514, []byte{128, 0}},
		{"nn", 516, []byte{0, 4, 0, 0}},
		{"oncs", 520, []byte{0x0C, 0}},
		{"fuses", 522, []byte{1, 0}},
		{"fna", 524, []byte{4}},
		{"vwc", 525, []byte{7}},
		{"awun", 526, []byte{7, 0}},
		{"awupf", 528, []byte{8, 0}},
		{"sgls", 536, []byte{0x05, 0x00, 0x10, 0x00}},
		{"mnan", 540, []byte{9, 0, 0, 0}},
		{"subnqn", 768, []byte("nqn.2024-01.io.flashpath:sub1\x00")},
		{"ioccsz", 1792, []byte{4, 1, 0, 0}},
		{"iorcsz", 1796, []byte{1, 0, 0, 0}},
		{"icdoff", 1800, []byte{0, 0}},
		{"fcatt", 1802, []byte{0}},
		{"msdbd", 1803, []byte{1}},
		{"ofcs", 1804, []byte{1, 0}},
		{"psd0.mp", 2048, []byte{0xC4, 0x09}},
	} {
		if got := b[tc.off : tc.off+len(tc.want)]; string(got) != string(tc.want) {
			t.Errorf("%s@%d = % x, want % x", tc.name, tc.off, got, tc.want)
		}
	}
	got, err := DecodeIdentifyController(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, id) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, id)
	}
	if _, err := DecodeIdentifyController(b[:IdentifySize-1]); err == nil {
		t.Error("decoded a short structure")
	}
	if err := id.Encode(b[:IdentifySize-1]); err == nil {
		t.Error("encoded into a short buffer")
	}
	id.SubNQN = strings.Repeat("n", 256)
	if err := id.Encode(b); err == nil {
		t.Error("encoded a SUBNQN with no room for its NUL")
	}
}

func TestMaxTransfer(t *testing.T) {
	for _, tc := range []struct {
		mdts uint8
		want int
	}{{0, 0}, {1, 8192}, {5, 128 << 10}, {20, 4 << 30}, {21, 0}} {
		id := IdentifyController{MDTS: tc.mdts}
		if got := id.MaxTransfer(); got != tc.want {
			t.Errorf("MDTS %d: MaxTransfer = %d, want %d", tc.mdts, got, tc.want)
		}
	}
}

func testNamespace() IdentifyNamespace {
	ns := IdentifyNamespace{
		NSZE: 1 << 21, NCAP: 1 << 21, NUSE: 1 << 20,
		NSFEAT: NSFEATThin, NLBAF: 1, FLBAS: 1, DLFEAT: DLFEATZeroes, NMIC: 1, NOWS: 31,
		NVMCAP: [16]byte{0, 0, 0, 0x40}, ANAGRPID: 1,
		NGUID: [16]byte{1, 15: 2}, EUI64: [8]byte{0xAA, 7: 0xBB},
	}
	ns.LBAF[0] = LBAFormat{LBADS: 9, RP: 2}
	ns.LBAF[1] = LBAFormat{MS: 8, LBADS: 12, RP: 0}
	return ns
}

// TestIdentifyNamespaceLayout checks the offsets of struct nvme_id_ns.
func TestIdentifyNamespaceLayout(t *testing.T) {
	ns := testNamespace()
	b := make([]byte, IdentifySize)
	if err := ns.Encode(b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		off  int
		want []byte
	}{
		{"nsze", 0, []byte{0, 0, 0x20, 0}},
		{"ncap", 8, []byte{0, 0, 0x20, 0}},
		{"nuse", 16, []byte{0, 0, 0x10, 0}},
		{"nsfeat", 24, []byte{1}},
		{"nlbaf", 25, []byte{1}},
		{"flbas", 26, []byte{1}},
		{"nmic", 30, []byte{1}},
		{"dlfeat", 33, []byte{0x09}},
		{"nvmcap", 48, []byte{0, 0, 0, 0x40}},
		{"nows", 72, []byte{31, 0}},
		{"anagrpid", 92, []byte{1, 0, 0, 0}},
		{"nguid", 104, []byte{1}},
		{"nguid end", 119, []byte{2}},
		{"eui64", 120, []byte{0xAA, 0, 0, 0, 0, 0, 0, 0xBB}},
		{"lbaf0", 128, []byte{0, 0, 9, 2}},
		{"lbaf1", 132, []byte{8, 0, 12, 0}},
	} {
		if got := b[tc.off : tc.off+len(tc.want)]; string(got) != string(tc.want) {
			t.Errorf("%s@%d = % x, want % x", tc.name, tc.off, got, tc.want)
		}
	}
	got, err := DecodeIdentifyNamespace(b)
	if err != nil || !reflect.DeepEqual(got, ns) {
		t.Errorf("round trip: %+v, %v", got, err)
	}
	if got.BlockSize() != 4096 {
		t.Errorf("BlockSize = %d, want 4096", got.BlockSize())
	}
	if _, err := DecodeIdentifyNamespace(b[:100]); err == nil {
		t.Error("decoded a short structure")
	}
	if err := ns.Encode(b[:100]); err == nil {
		t.Error("encoded into a short buffer")
	}
}

func TestIdentifyNamespaceFormats(t *testing.T) {
	for _, tc := range []struct {
		name      string
		nlbaf     uint8
		flbas     uint8
		lbads     uint8
		wantErr   bool
		wantIndex int
		wantBS    int
	}{
		{"512", 0, 0, 9, false, 0, 512},
		{"metadata bit ignored", 1, 0x11, 12, false, 1, 4096},
		{"index beyond NLBAF", 0, 1, 12, false, 1, 0},
		{"LBADS too small", 1, 1, 8, false, 1, 0},
		{"LBADS too large", 1, 1, 17, false, 1, 0},
		// NVMe 2.0: up to 64 formats, FLBAS bits 6:5 are the index's upper bits.
		{"64 formats", 63, 0x21, 12, false, 17, 0},
		{"NLBAF 64", 64, 0, 9, true, 0, 0},
	} {
		ns := IdentifyNamespace{NLBAF: tc.nlbaf, FLBAS: tc.flbas}
		ns.LBAF[0].LBADS = 9
		if tc.wantIndex < len(ns.LBAF) {
			ns.LBAF[tc.wantIndex].LBADS = tc.lbads
		}
		b := make([]byte, IdentifySize)
		_ = ns.Encode(b)
		got, err := DecodeIdentifyNamespace(b)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err %v", tc.name, err)
			continue
		}
		if err != nil {
			continue
		}
		if got.FormatIndex() != tc.wantIndex || got.BlockSize() != tc.wantBS {
			t.Errorf("%s: FormatIndex %d BlockSize %d, want %d %d", tc.name, got.FormatIndex(), got.BlockSize(), tc.wantIndex, tc.wantBS)
		}
	}
}

func TestIdentifySQE(t *testing.T) {
	var c SQE
	c.SetIdentify(CNSNSDescList, 7)
	// struct nvme_identify: cns@40 ctrlid@42 csi@47.
	if c[0] != 0x06 || c[4] != 7 || c[40] != 0x03 || c.CNS() != CNSNSDescList || c.CNTID() != 0 {
		t.Errorf("Identify: % x", c[:])
	}
	c.SetCDW(10, 0xABCD<<16|CNSCtrlList)
	c.SetCDW(11, 2<<24)
	if c.CNS() != 0x13 || c.CNTID() != 0xABCD || c.CSI() != 2 {
		t.Errorf("CNS %#x CNTID %#x CSI %d", c.CNS(), c.CNTID(), c.CSI())
	}
	for _, tc := range []struct{ got, want int }{
		{CNSNamespace, 0}, {CNSController, 1}, {CNSActiveNSList, 2}, {CNSNSDescList, 3},
		{CNSCSNamespace, 5}, {CNSCSController, 6}, {CNSCSActiveNSList, 7}, {CNSIndependentNS, 8},
		{CNSAllocatedNSList, 0x10}, {CNSCtrlList, 0x13}, {CNSCommandSetStruct, 0x1C},
	} {
		if tc.got != tc.want {
			t.Errorf("CNS %#x, want %#x", tc.got, tc.want)
		}
	}
}

func TestNSList(t *testing.T) {
	b := make([]byte, IdentifySize)
	EncodeNSList(b, []uint32{1, 2, 5, 9}, 2)
	if le.Uint32(b) != 5 || le.Uint32(b[4:]) != 9 || le.Uint32(b[8:]) != 0 {
		t.Errorf("list: % x", b[:12])
	}
	ids, err := DecodeNSList(b)
	if err != nil || !reflect.DeepEqual(ids, []uint32{5, 9}) {
		t.Errorf("DecodeNSList = %v, %v", ids, err)
	}
	many := make([]uint32, 1500)
	for i := range many {
		many[i] = uint32(i + 1)
	}
	EncodeNSList(b, many, 0)
	ids, _ = DecodeNSList(b)
	if len(ids) != 1024 || ids[1023] != 1024 {
		t.Errorf("full list: %d entries", len(ids))
	}
	if _, err := DecodeNSList(b[:4095]); err == nil {
		t.Error("decoded a short list")
	}
}

func TestNSDescList(t *testing.T) {
	descs := []NSDescriptor{
		{Type: NIDTEUI64, ID: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{Type: NIDTNGUID, ID: make([]byte, 16)},
		{Type: NIDTUUID, ID: []byte("0123456789abcdef")},
		{Type: NIDTCSI, ID: []byte{0}},
	}
	b := make([]byte, IdentifySize)
	if err := EncodeNSDescList(b, descs); err != nil {
		t.Fatal(err)
	}
	// struct nvme_ns_id_desc: nidt@0 nidl@1 rsvd@2 nid@4.
	if b[0] != 1 || b[1] != 8 || b[4] != 1 || b[12] != 2 || b[13] != 16 || b[32] != 3 || b[52] != 4 || b[53] != 1 || b[58] != 0 {
		t.Errorf("layout: % x", b[:60])
	}
	got, err := DecodeNSDescList(b)
	if err != nil || !reflect.DeepEqual(got, descs) {
		t.Errorf("DecodeNSDescList = %v, %v", got, err)
	}

	for _, tc := range []struct {
		name  string
		descs []NSDescriptor
	}{
		{"type 0", []NSDescriptor{{Type: 0}}},
		{"unknown type", []NSDescriptor{{Type: 9, ID: []byte{1}}}},
		{"EUI64 of 16 bytes", []NSDescriptor{{Type: NIDTEUI64, ID: make([]byte, 16)}}},
	} {
		if err := EncodeNSDescList(b, tc.descs); err == nil {
			t.Errorf("EncodeNSDescList(%s) succeeded", tc.name)
		}
	}
	full := make([]NSDescriptor, 205) // 205*20 > 4096
	for i := range full {
		full[i] = NSDescriptor{Type: NIDTUUID, ID: make([]byte, 16)}
	}
	if err := EncodeNSDescList(b, full); err == nil {
		t.Error("EncodeNSDescList overflowing 4096 bytes succeeded")
	}

	bad := make([]byte, IdentifySize)
	bad[0], bad[1] = NIDTEUI64, 16
	if _, err := DecodeNSDescList(bad); err == nil {
		t.Error("decoded an EUI64 of 16 bytes")
	}
	// Unknown types are skipped over; a descriptor running past the list is an error.
	bad = make([]byte, IdentifySize)
	for off := 0; off+4 <= IdentifySize; off += 4 + 255 {
		bad[off], bad[off+1] = 0x7, 255
	}
	if ds, err := DecodeNSDescList(bad); err == nil || len(ds) != 15 || len(ds[0].ID) != 255 {
		t.Errorf("chain of 255-byte descriptors: %d decoded, err %v", len(ds), err)
	}
	if _, err := DecodeNSDescList(bad[:4095]); err == nil {
		t.Error("decoded a short list")
	}
}
