package nvmeof

import (
	"errors"
	"strings"
	"testing"
	"unsafe"
)

// Sizes of the fixed wire structures (as SPDK's nvmf_spec.h and the
// kernel's BUILD_BUG_ON checks assert them).
func TestSizes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"SQE", unsafe.Sizeof(SQE{}), 64},
		{"SQESize", SQESize, 64},
		{"CQE", unsafe.Sizeof(CQE{}), 16},
		{"CQESize", CQESize, 16},
		{"SGLDesc", unsafe.Sizeof(SGLDesc{}), 16},
		{"SGLDescSize", SGLDescSize, 16},
		{"DSMRangeSize", DSMRangeSize, 16},
		{"ConnectDataSize", ConnectDataSize, 1024},
		{"CHSize", CHSize, 8},
		{"CapsuleCmdHLen", CapsuleCmdHLen, 72},
		{"CapsuleRspHLen", CapsuleRspHLen, 24},
		{"DataHLen", DataHLen, 24},
		{"R2THLen", R2THLen, 24},
		{"TermReqHLen", TermReqHLen, 24},
		{"ICReqSize", ICReqSize, 128},
		{"ICRespSize", ICRespSize, 128},
		{"DigestSize", DigestSize, 4},
		{"IdentifySize", IdentifySize, 4096},
		{"DiscoveryHeaderSize", DiscoveryHeaderSize, 1024},
		{"DiscoveryEntrySize", DiscoveryEntrySize, 1024},
		{"ErrorLogEntrySize", ErrorLogEntrySize, 64},
		{"SMARTLogSize", SMARTLogSize, 512},
		{"FirmwareSlotLogSize", FirmwareSlotLogSize, 512},
		{"ChangedNSListSize", ChangedNSListSize, 4096},
		{"CommandEffectsLogSize", CommandEffectsLogSize, 4096},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	if got := DiscoveryLogSize(3); got != 4*1024 {
		t.Errorf("DiscoveryLogSize(3) = %d, want 4096", got)
	}
}

// kernelRead builds, byte by byte, the struct nvme_rw_command of
// include/linux/nvme.h: opcode@0 flags@1 command_id@2 nsid@4 rsvd2@8
// metadata@16 dptr@24 slba@40 length@48 control@50 dsmgmt@52 reftag@56
// apptag@60 appmask@62.
func kernelRead() []byte {
	b := make([]byte, 64)
	b[0] = 0x02                                         // nvme_cmd_read
	b[1] = 0x40                                         // NVME_CMD_SGL_METABUF
	b[2], b[3] = 0x34, 0x12                             // command_id 0x1234
	b[4], b[5], b[6], b[7] = 0x01, 0x00, 0x00, 0x00     // nsid 1
	b[16] = 0xAA                                        // metadata pointer
	b[24], b[25], b[26], b[27] = 0x00, 0x10, 0x00, 0x00 // sgl.addr 0x1000
	b[32], b[33], b[34], b[35] = 0x00, 0x20, 0x00, 0x00 // sgl.length 0x2000
	b[39] = 0x5A                                        // NVME_TRANSPORT_SGL_DATA_DESC<<4 | NVME_SGL_FMT_TRANSPORT_A
	b[40], b[41], b[42], b[43] = 0x78, 0x56, 0x34, 0x12 // slba low
	b[44], b[45], b[46], b[47] = 0x01, 0x00, 0x00, 0x00 // slba high
	b[48], b[49] = 0x07, 0x00                           // length (NLB 0-based) 7
	b[50], b[51] = 0x00, 0x40                           // control NVME_RW_FUA (1<<14)
	return b
}

func TestSQEKernelLayout(t *testing.T) {
	b := kernelRead()
	c := SQEView(b)
	if c == nil {
		t.Fatal("SQEView(64 bytes) = nil")
	}
	for _, tc := range []struct {
		name      string
		got, want uint64
	}{
		{"Opcode", uint64(c.Opcode()), NVMRead},
		{"Flags", uint64(c.Flags()), FlagsSGL},
		{"PSDT", uint64(c.PSDT()), PSDTSGLMptrBuf},
		{"CID", uint64(c.CID()), 0x1234},
		{"NSID", uint64(c.NSID()), 1},
		{"CDW1", uint64(c.CDW(1)), 1},
		{"SGL.Address", c.SGL().Address(), 0x1000},
		{"SGL.Length", uint64(c.SGL().Length()), 0x2000},
		{"SGL.ID", uint64(c.SGL().ID()), SGLTransport},
		{"SGL.Type", uint64(c.SGL().Type()), SGLTypeTransportData},
		{"SGL.SubType", uint64(c.SGL().SubType()), SGLSubTransport},
		{"SLBA", c.SLBA(), 0x1_12345678},
		{"NLB", uint64(c.NLB()), 7},
		{"CDW10", uint64(c.CDW(10)), 0x12345678},
		{"CDW12", uint64(c.CDW(12)), 0x40000007},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	if !c.FUA() {
		t.Error("FUA = false, want true")
	}

	// Build the same command with the setters: the bytes must match.
	var s SQE
	s.SetOpcode(NVMRead)
	s.SetFlags(FlagsSGL)
	s.SetCID(0x1234)
	s.SetNSID(1)
	s[16] = 0xAA
	s.SGL().SetDataBlock(SGLTransport, 0x1000, 0x2000)
	s.SetRW(0x1_12345678, 8)
	s.SetFUA(true)
	if string(s[:]) != string(b) {
		t.Errorf("setters built\n% x\nkernel layout\n% x", s[:], b)
	}
	s.SetFUA(false)
	if s.FUA() || s.CDW(12) != 7 {
		t.Errorf("after SetFUA(false): FUA %v CDW12 %#x", s.FUA(), s.CDW(12))
	}
	s.Reset()
	if s != (SQE{}) {
		t.Error("Reset left bytes set")
	}
}

func TestSQEView(t *testing.T) {
	if SQEView(make([]byte, 63)) != nil {
		t.Error("SQEView(63 bytes) != nil")
	}
	b := make([]byte, 72)
	c := SQEView(b[8:])
	c.SetCID(7)
	if b[10] != 7 {
		t.Error("SQEView copied instead of aliasing the buffer")
	}
	if CQEView(make([]byte, 15)) != nil {
		t.Error("CQEView(15 bytes) != nil")
	}
	r := CQEView(b[8:])
	r.SetCID(9)
	if b[20] != 9 {
		t.Error("CQEView copied instead of aliasing the buffer")
	}
}

func TestSQECDW(t *testing.T) {
	var c SQE
	for n := 0; n < 16; n++ {
		c.SetCDW(n, uint32(n)*0x01010101)
	}
	for n := 0; n < 16; n++ {
		if got := c.CDW(n); got != uint32(n)*0x01010101 {
			t.Errorf("CDW(%d) = %#x", n, got)
		}
		if c[4*n] != byte(n) {
			t.Errorf("CDW %d not at byte %d", n, 4*n)
		}
	}
}

func TestSGL(t *testing.T) {
	var d SGLDesc
	d.SetDataBlock(SGLInCapsule, 0x40, 4096)
	if d.Address() != 0x40 || d.Length() != 4096 || d.ID() != 0x01 || d.Type() != SGLTypeDataBlock || d.SubType() != SGLSubOffset {
		t.Errorf("in-capsule SGL: addr %#x len %d id %#x", d.Address(), d.Length(), d.ID())
	}

	for _, tc := range []struct {
		length     uint32
		invalidate bool
		wantErr    bool
	}{
		{0, false, false},
		{4096, false, false},
		{1<<24 - 1, true, false},
		{1 << 24, false, true},
		{0xFFFFFFFF, false, true},
	} {
		var k SGLDesc
		err := k.SetKeyed(0x1122334455667788, tc.length, 0xDEADBEEF, tc.invalidate)
		if (err != nil) != tc.wantErr {
			t.Errorf("SetKeyed(len %#x) err = %v, want error %v", tc.length, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		// Kernel struct nvme_keyed_sgl_desc: addr@0 length[3]@8 key@11 type@15.
		if k[8] != byte(tc.length) || k[9] != byte(tc.length>>8) || k[10] != byte(tc.length>>16) {
			t.Errorf("keyed length bytes % x, want %#x", k[8:11], tc.length)
		}
		if k[11] != 0xEF || k[14] != 0xDE {
			t.Errorf("key bytes % x", k[11:15])
		}
		wantID := uint8(0x40)
		if tc.invalidate {
			wantID = 0x4F
		}
		if k.Address() != 0x1122334455667788 || k.Length() != tc.length || k.Key() != 0xDEADBEEF || k.ID() != wantID || k.Type() != SGLTypeKeyedDataBlock {
			t.Errorf("keyed SGL read back addr %#x len %#x key %#x id %#x", k.Address(), k.Length(), k.Key(), k.ID())
		}
	}
	// A keyed descriptor's length is 24 bits: the key's low byte is not part of it.
	var k SGLDesc
	k[8], k[9], k[10], k[11], k[15] = 0xFF, 0xFF, 0xFF, 0xFF, SGLKeyed
	if k.Length() != 0xFFFFFF {
		t.Errorf("keyed Length = %#x, want 0xffffff", k.Length())
	}
	if SGLInCapsule != 0x01 || SGLTransport != 0x5A || SGLKeyed != 0x40 || SGLKeyedInvalidate != 0x4F {
		t.Error("SGL identifiers differ from the kernel's")
	}
}

func TestDSMRange(t *testing.T) {
	b := make([]byte, 3*DSMRangeSize)
	r := DSMRange{Attributes: 0x01020304, NLB: 0x0A0B0C0D, SLBA: 0x1122334455667788}
	EncodeDSMRange(b, 2, r)
	// struct nvme_dsm_range: cattr@0 nlb@4 slba@8.
	if b[32] != 0x04 || b[36] != 0x0D || b[40] != 0x88 {
		t.Errorf("range 2 bytes % x", b[32:48])
	}
	got, err := DecodeDSMRange(b, 2)
	if err != nil || got != r {
		t.Errorf("DecodeDSMRange = %+v, %v; want %+v", got, err, r)
	}
	for _, i := range []int{-1, 3, 1 << 59, 1 << 60, int(^uint(0) >> 1)} {
		if _, err := DecodeDSMRange(b, i); err == nil {
			t.Errorf("DecodeDSMRange(48 bytes, %d) succeeded", i)
		}
	}
	if _, err := DecodeDSMRange(b[:47], 2); err == nil {
		t.Error("DecodeDSMRange on a cut range succeeded")
	}
}

func TestCQE(t *testing.T) {
	// struct nvme_completion: result@0 (8) sq_head@8 sq_id@10 command_id@12 status@14.
	b := []byte{
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0x10, 0x00, 0x02, 0x00, 0x34, 0x12,
		0x05, 0x80, // status field: phase 1, SC 0x02, DNR
	}
	c := CQEView(b)
	for _, tc := range []struct {
		name      string
		got, want uint64
	}{
		{"DW0", uint64(c.DW0()), 0x04030201},
		{"DW1", uint64(c.DW1()), 0x08070605},
		{"SQHD", uint64(c.SQHD()), 0x10},
		{"SQID", uint64(c.SQID()), 2},
		{"CID", uint64(c.CID()), 0x1234},
		{"Status", uint64(c.Status()), uint64(StatusDNR | StatusInvalidField)},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	if b[14]&1 != 1 {
		t.Fatal("phase bit lost")
	}
	c.SetStatus(StatusConnectInvalidParam | StatusDNR)
	if b[14]&1 != 0 {
		t.Error("SetStatus kept the phase tag")
	}
	if le.Uint16(b[14:]) != 0x8000|0x182<<1 {
		t.Errorf("status field %#x", le.Uint16(b[14:]))
	}
	var n CQE
	n.SetDW0(1)
	n.SetDW1(2)
	n.SetSQHD(3)
	n.SetSQID(4)
	n.SetCID(5)
	n.SetStatus(StatusLBAOutOfRange)
	if n.DW0() != 1 || n.DW1() != 2 || n.SQHD() != 3 || n.SQID() != 4 || n.CID() != 5 || n.Status() != StatusLBAOutOfRange {
		t.Errorf("CQE set/get: % x", n[:])
	}
	n.Reset()
	if n != (CQE{}) {
		t.Error("Reset left bytes set")
	}
}

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		s        Status
		sct, sc  uint8
		dnr, ok  bool
		code     Status
		contains string
	}{
		{StatusSuccess, 0, 0, false, true, 0, "success"},
		{StatusInvalidField | StatusDNR, 0, 2, true, false, 0x002, "invalid field in command (sct 0x0 sc 0x2) dnr"},
		{StatusConnectInvalidParam, 1, 0x82, false, false, 0x182, "connect: invalid parameters"},
		{StatusInvalidLogPage | StatusMore, 1, 0x09, false, false, 0x109, "invalid log page"},
		{StatusUnrecoveredRead, 2, 0x81, false, false, 0x281, "unrecovered read error"},
		{MakeStatus(SCTPath, 0x02), 3, 0x02, false, false, 0x302, "asymmetric access inaccessible (sct 0x3 sc 0x2)"},
		{MakeStatus(SCTPath, 0x71), 3, 0x71, false, false, 0x371, "unknown status (sct 0x3 sc 0x71)"},
		{StatusSuccess | StatusMore, 0, 0, false, true, 0, "success"}, // More alone is still success
		{3 << 11, 0, 0, false, true, 0, "success"},                    // CRD alone
	} {
		if tc.s.SCT() != tc.sct || tc.s.SC() != tc.sc || tc.s.DNR() != tc.dnr || tc.s.OK() != tc.ok || tc.s.Code() != tc.code {
			t.Errorf("%#x: sct %d sc %#x dnr %v ok %v code %#x", uint16(tc.s), tc.s.SCT(), tc.s.SC(), tc.s.DNR(), tc.s.OK(), tc.s.Code())
		}
		if !strings.Contains(tc.s.String(), tc.contains) {
			t.Errorf("%#x.String() = %q, want it to contain %q", uint16(tc.s), tc.s.String(), tc.contains)
		}
	}
	// Values of the kernel's NVME_SC_* (include/linux/nvme.h).
	for _, tc := range []struct {
		s    Status
		want uint16
	}{
		{StatusCIDConflict, 0x3}, {StatusInvalidNamespace, 0xB}, {StatusInvalidSGLDescriptor, 0xD},
		{StatusSGLTypeInvalid, 0x11}, {StatusSGLOffsetInvalid, 0x16}, {StatusHostIDInconsistent, 0x18},
		{StatusKeepAliveExpired, 0x19}, {StatusKeepAliveInvalid, 0x1A}, {StatusLBAOutOfRange, 0x80},
		{StatusNamespaceNotReady, 0x82}, {StatusInvalidQueueSize, 0x102}, {StatusAERLimitExceeded, 0x105},
		{StatusFeatureNotSaveable, 0x10D}, {StatusFeatureNotChangeable, 0x10E}, {StatusConnectIncompatible, 0x180},
		{StatusConnectCtrlBusy, 0x181}, {StatusConnectRestartDisc, 0x183}, {StatusConnectInvalidHost, 0x184},
		{StatusWriteToReadOnly, 0x182}, {StatusWriteFault, 0x280}, {StatusCompareFailure, 0x285},
		{StatusAccessDenied, 0x286}, {StatusDeallocatedBlock, 0x287}, {StatusDNR, 0x4000}, {StatusMore, 0x2000},
	} {
		if uint16(tc.s) != tc.want {
			t.Errorf("status %q = %#x, want %#x", tc.s, uint16(tc.s), tc.want)
		}
	}
	if MakeStatus(9, 0x80) != MakeStatus(1, 0x80) {
		t.Error("MakeStatus does not mask SCT to 3 bits")
	}
}

func TestStatusError(t *testing.T) {
	err := error(&StatusError{Op: "read", Status: StatusLBAOutOfRange | StatusDNR})
	if !errors.Is(err, &StatusError{Status: StatusLBAOutOfRange}) {
		t.Error("errors.Is ignores DNR: want a match with any Op")
	}
	if !errors.Is(err, &StatusError{Op: "read", Status: StatusLBAOutOfRange}) {
		t.Error("errors.Is with the same Op: want a match")
	}
	if errors.Is(err, &StatusError{Op: "write", Status: StatusLBAOutOfRange}) {
		t.Error("errors.Is matched another Op")
	}
	if errors.Is(err, &StatusError{Status: StatusCapacityExceeded}) {
		t.Error("errors.Is matched another status")
	}
	// The command is named once, also where the status text names it.
	if got := (&StatusError{Op: "connect", Status: StatusConnectInvalidHost}).Error(); !strings.HasPrefix(got, "connect: invalid host") {
		t.Errorf("connect refused: %q", got)
	}
	if got := err.Error(); !strings.HasPrefix(got, "read: ") {
		t.Errorf("read failed: %q", got)
	}
	if got := err.Error(); got != "read: LBA out of range (sct 0x0 sc 0x80) dnr" {
		t.Errorf("Error() = %q", got)
	}
}

func TestOpcodes(t *testing.T) {
	// enum nvme_admin_opcode / nvme_opcode / nvmf_capsule_command in the kernel.
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"GetLogPage", AdminGetLogPage, 0x02}, {"Identify", AdminIdentify, 0x06},
		{"Abort", AdminAbort, 0x08}, {"SetFeatures", AdminSetFeatures, 0x09},
		{"GetFeatures", AdminGetFeatures, 0x0A}, {"AsyncEvent", AdminAsyncEvent, 0x0C},
		{"KeepAlive", AdminKeepAlive, 0x18}, {"DoorbellBuf", AdminDoorbellBuf, 0x7C},
		{"Fabrics", OpFabrics, 0x7F}, {"FormatNVM", AdminFormatNVM, 0x80},
		{"Sanitize", AdminSanitize, 0x84}, {"GetLBAStatus", AdminGetLBAStatus, 0x86},
		{"Write", NVMWrite, 0x01}, {"Read", NVMRead, 0x02}, {"Compare", NVMCompare, 0x05},
		{"WriteZeroes", NVMWriteZeroes, 0x08}, {"DSM", NVMDSM, 0x09}, {"Verify", NVMVerify, 0x0C},
		{"PropertySet", FabricsPropertySet, 0x00}, {"Connect", FabricsConnect, 0x01},
		{"PropertyGet", FabricsPropertyGet, 0x04}, {"AuthSend", FabricsAuthSend, 0x05},
		{"AuthRecv", FabricsAuthRecv, 0x06}, {"Disconnect", FabricsDisconnect, 0x08},
		{"CDW12Deac", CDW12Deac, 1 << 25}, {"DSMAttrDeallocate", DSMAttrDeallocate, 1 << 2},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}
