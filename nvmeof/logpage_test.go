package nvmeof

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestGetLogPageSQE(t *testing.T) {
	for _, tc := range []struct {
		n          uint32
		numdl      uint16
		numdu      uint16
		wantDwords uint32
	}{
		{4, 0, 0, 1},
		{512, 127, 0, 128},
		{4096, 1023, 0, 1024},
		{1 << 18, 0xFFFF, 0, 1 << 16},
		{1 << 20, 0xFFFF, 3, 1 << 18},
	} {
		var c SQE
		c.SetGetLogPage(LogSMART, 0xFFFFFFFF, tc.n, 4096)
		// struct nvme_get_log_page_command: lid@40 lsp@41 numdl@42 numdu@44 lsi@46 lpo@48.
		if c[0] != AdminGetLogPage || c.NSID() != 0xFFFFFFFF || c[40] != LogSMART ||
			le.Uint16(c[42:]) != tc.numdl || le.Uint16(c[44:]) != tc.numdu || le.Uint16(c[46:]) != 0 {
			t.Errorf("n %d: % x", tc.n, c[40:56])
		}
		if c.LID() != LogSMART || c.LogNumDwords() != tc.wantDwords || c.LogOffset() != 4096 || c.LSP() != 0 || c.RAE() {
			t.Errorf("n %d: LID %d NUMD+1 %d LPO %d", tc.n, c.LID(), c.LogNumDwords(), c.LogOffset())
		}
	}
	// NUMDU is CDW11 bits 15:0, as QEMU's nvme_get_log reads it; LSI (bits 31:16) is not part of it.
	var c SQE
	c.SetCDW(10, 0x0002<<16|0x80<<8|LogDiscovery) // NUMDL 2, RAE
	c.SetCDW(11, 0xBEEF<<16|0x0001)               // LSI 0xBEEF, NUMDU 1
	if c.LogNumDwords() != 0x10003 || !c.RAE() || c.LSP() != 0 || c.LID() != 0x70 {
		t.Errorf("NUMD+1 %#x RAE %v", c.LogNumDwords(), c.RAE())
	}
	c.SetCDW(10, 0x7F<<8)
	if c.LSP() != 0x7F || c.RAE() {
		t.Errorf("LSP %#x RAE %v", c.LSP(), c.RAE())
	}
	for _, tc := range []struct{ got, want int }{
		{LogError, 1}, {LogSMART, 2}, {LogFirmwareSlot, 3}, {LogChangedNSList, 4}, {LogCommandEffects, 5}, {LogDiscovery, 0x70},
	} {
		if tc.got != tc.want {
			t.Errorf("LID %#x, want %#x", tc.got, tc.want)
		}
	}
}

func TestErrorLogEntry(t *testing.T) {
	e := ErrorLogEntry{ErrorCount: 3, SQID: 1, CID: 0x55, Status: StatusInvalidField | StatusDNR,
		ParamLoc: 0x28, LBA: 1 << 40, NSID: 2, TrType: TrTypeTCP}
	b := make([]byte, ErrorLogEntrySize)
	e.Encode(b)
	// struct nvme_error_log_page: error_count@0 sqid@8 cmdid@10 status_field@12
	// parm_error_location@14 lba@16 nsid@24 vs@28 trtype@29.
	want := map[int]byte{0: 3, 8: 1, 10: 0x55, 12: 0x04, 13: 0x80, 14: 0x28, 21: 1, 24: 2, 29: 3}
	for i, v := range b {
		if v != want[i] {
			t.Errorf("byte %d = %#x, want %#x", i, v, want[i])
		}
	}
	got, err := DecodeErrorLogEntry(b)
	if err != nil || got != e {
		t.Errorf("round trip %+v, %v", got, err)
	}
	b[12] |= 1 // phase tag: not part of the status
	if got, _ := DecodeErrorLogEntry(b); got.Status != e.Status {
		t.Errorf("status with phase %#x", uint16(got.Status))
	}
	if _, err := DecodeErrorLogEntry(b[:63]); err == nil {
		t.Error("decoded a short entry")
	}
}

func TestSMARTLog(t *testing.T) {
	s := SMARTLog{CriticalWarning: 1, TemperatureK: 310, AvailableSpare: 100, SpareThreshold: 10, PercentUsed: 3,
		DataUnitsRead: 11, DataUnitsWritten: 12, HostReads: 13, HostWrites: 14, PowerCycles: 15,
		PowerOnHours: 16, UnsafeShutdowns: 17, MediaErrors: 18, NumErrLogEntries: 19}
	b := make([]byte, SMARTLogSize)
	for i := range b {
		b[i] = 0xFF
	}
	s.Encode(b)
	// struct nvme_smart_log offsets.
	want := map[int]byte{0: 1, 1: 310 & 0xFF, 2: 310 >> 8, 3: 100, 4: 10, 5: 3,
		32: 11, 48: 12, 64: 13, 80: 14, 112: 15, 128: 16, 144: 17, 160: 18, 176: 19}
	for i, v := range b {
		if v != want[i] {
			t.Errorf("byte %d = %#x, want %#x", i, v, want[i])
		}
	}
	got, err := DecodeSMARTLog(b)
	if err != nil || got != s {
		t.Errorf("round trip %+v, %v", got, err)
	}
	if _, err := DecodeSMARTLog(b[:511]); err == nil {
		t.Error("decoded a short log")
	}
}

func TestFirmwareSlotLog(t *testing.T) {
	b := make([]byte, FirmwareSlotLogSize)
	EncodeFirmwareSlotLog(b, "1.2")
	// struct nvme_fw_slot_info_log: afi@0 frs[7]@8.
	if b[0] != 1 || string(b[8:16]) != "1.2     " || b[16] != 0 {
		t.Errorf("layout % x", b[:24])
	}
	copy(b[8*7:], "SLOT7   ")
	b[0] = 0x27 // next reset slot 2, active slot 7
	active, revs, err := DecodeFirmwareSlotLog(b)
	if err != nil || active != 7 || revs[0] != "1.2" || revs[1] != "" || revs[6] != "SLOT7" {
		t.Errorf("DecodeFirmwareSlotLog = %d %q %v", active, revs, err)
	}
	if _, _, err := DecodeFirmwareSlotLog(b[:511]); err == nil {
		t.Error("decoded a short log")
	}
}

func TestChangedNSList(t *testing.T) {
	b := make([]byte, ChangedNSListSize)
	EncodeChangedNSList(b, []uint32{3, 7})
	if ids, _ := DecodeNSList(b); !reflect.DeepEqual(ids, []uint32{3, 7}) {
		t.Errorf("changed list %v", ids)
	}
	EncodeChangedNSList(b, make([]uint32, 1025))
	if le.Uint32(b) != 0xFFFFFFFF || le.Uint32(b[4:]) != 0 {
		t.Errorf("overflowed list % x", b[:8])
	}
	full := make([]uint32, 1024)
	for i := range full {
		full[i] = uint32(i + 1)
	}
	EncodeChangedNSList(b, full)
	if le.Uint32(b[4092:]) != 1024 {
		t.Error("a list of exactly 1024 was not written out")
	}
}

func TestCommandEffects(t *testing.T) {
	var admin, io [256]uint32
	admin[AdminIdentify] = CSECSUPP
	admin[AdminFormatNVM] = CSECSUPP | CSELBCC | CSENCC | CSENIC
	io[NVMWrite] = CSECSUPP | CSELBCC
	io[0xFF] = CSECCC
	b := make([]byte, CommandEffectsLogSize)
	EncodeCommandEffects(b, &admin, &io)
	// struct nvme_effects_log: acs[256]@0 iocs[256]@1024.
	if b[4*6] != 1 || b[4*0x80] != 0x0F || b[1024+4] != 3 || b[1024+4*255] != 0x10 {
		t.Error("layout")
	}
	a2, i2, err := DecodeCommandEffects(b)
	if err != nil || a2 != admin || i2 != io {
		t.Errorf("round trip: %v", err)
	}
	if _, _, err := DecodeCommandEffects(b[:4095]); err == nil {
		t.Error("decoded a short log")
	}
}

func testDiscoveryEntries() []DiscoveryEntry {
	return []DiscoveryEntry{
		{TrType: TrTypeTCP, AdrFam: AdrFamIPv4, SubType: SubTypeDiscovery, TReq: TReqSecureChannelNotRequired,
			PortID: 1, CntlID: CntlIDDynamic, ASQSZ: 32, EFlags: 0,
			TrSvcID: "8009", SubNQN: DiscoveryNQN, TrAddr: "192.0.2.1"},
		{TrType: TrTypeTCP, AdrFam: AdrFamIPv6, SubType: SubTypeNVM, TReq: TReqSecureChannelNotRequired,
			PortID: 2, CntlID: CntlIDDynamic, ASQSZ: 128, EFlags: 0,
			TrSvcID: "4420", SubNQN: "nqn.2024-01.io.flashpath:sub1", TrAddr: "2001:db8::1", SecType: 0},
		{TrType: TrTypeRDMA, AdrFam: AdrFamIPv4, SubType: SubTypeNVM, TReq: TReqSecureChannelNotSpecified,
			PortID: 3, CntlID: CntlIDDynamic, ASQSZ: 32,
			TrSvcID: "4420", SubNQN: "nqn.2024-01.io.flashpath:sub1", TrAddr: "192.0.2.7",
			RDMAQPType: RDMAQPTypeConnected, RDMAPrType: RDMAPrTypeNotSpecific, RDMACMS: RDMACMSRDMACM, RDMAPKey: 0xffff},
	}
}

func TestDiscoveryLog(t *testing.T) {
	entries := testDiscoveryEntries()
	b := make([]byte, DiscoveryLogSize(len(entries)))
	if err := EncodeDiscoveryLog(b, 42, entries); err != nil {
		t.Fatal(err)
	}
	// struct nvmf_disc_rsp_page_hdr: genctr@0 numrec@8 recfmt@16 entries@1024.
	if b[0] != 42 || b[8] != 3 || b[16] != 0 {
		t.Errorf("header % x", b[:18])
	}
	// struct nvmf_disc_rsp_page_entry: trtype@0 adrfam@1 subtype@2 treq@3 portid@4
	// cntlid@6 asqsz@8 eflags@10 trsvcid@32 subnqn@256 traddr@512 tsas@768.
	e := b[2048:]
	if e[0] != 3 || e[1] != 2 || e[2] != 2 || e[3] != 2 || e[4] != 2 || e[6] != 0xFF || e[7] != 0xFF || e[8] != 128 {
		t.Errorf("entry 1 % x", e[:12])
	}
	if !strings.HasPrefix(string(e[32:64]), "4420") || !strings.HasPrefix(string(e[256:]), "nqn.2024-01.io.flashpath:sub1\x00") ||
		!strings.HasPrefix(string(e[512:]), "2001:db8::1") {
		t.Error("entry 1 strings not at 32, 256, 512")
	}
	// RDMA TSAS (struct nvmf_disc_rsp_page_entry tsas.rdma): qptype@768
	// prtype@769 cms@770 pkey@776.
	if e := b[3072:]; e[0] != 1 || e[768] != 1 || e[769] != 1 || e[770] != 1 || e[776] != 0xff || e[777] != 0xff {
		t.Errorf("RDMA entry tsas % x", e[768:778])
	}
	got, err := DecodeDiscoveryLog(b)
	if err != nil || got.GenCtr != 42 || got.NumRec != 3 || got.RecFmt != 0 || !reflect.DeepEqual(got.Entries, entries) {
		t.Errorf("round trip: %+v, %v", got, err)
	}

	// The host reads the header first: fewer entries than NUMREC, and partial entries, are fine.
	got, err = DecodeDiscoveryLog(b[:DiscoveryHeaderSize+DiscoveryEntrySize+100])
	if err != nil || got.NumRec != 3 || len(got.Entries) != 1 {
		t.Errorf("partial page: %d entries, %v", len(got.Entries), err)
	}
	le.PutUint64(b[8:], 1<<63) // NUMREC far beyond the buffer
	if got, err = DecodeDiscoveryLog(b); err != nil || len(got.Entries) != 3 {
		t.Errorf("huge NUMREC: %d entries, %v", len(got.Entries), err)
	}
	if _, err := DecodeDiscoveryLog(b[:1023]); err == nil {
		t.Error("decoded a short header")
	}
	if err := EncodeDiscoveryLog(b[:3000], 1, entries); err == nil {
		t.Error("encoded into a short buffer")
	}
	entries[0].TrSvcID = strings.Repeat("9", 33)
	if err := EncodeDiscoveryLog(b, 1, entries); err == nil {
		t.Error("encoded a 33-byte TRSVCID")
	}
}

func TestAdrFamFor(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want uint8
	}{
		{"192.0.2.1", AdrFamIPv4},
		{"::ffff:192.0.2.1", AdrFamIPv4},
		{"2001:db8::1", AdrFamIPv6},
		{"::1", AdrFamIPv6},
	} {
		if got := AdrFamFor(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("AdrFamFor(%s) = %d, want %d", tc.addr, got, tc.want)
		}
	}
	// nvmf_trtype / nvmf_addr_family / subsystem types in the kernel.
	if TrTypeRDMA != 1 || TrTypeFC != 2 || TrTypeTCP != 3 || TrTypeLoop != 254 ||
		SubTypeReferral != 1 || SubTypeNVM != 2 || SubTypeDiscovery != 3 {
		t.Error("transport or subsystem type values differ from the kernel's")
	}
}

// TestDiscoveryNames: the discovery log fields read as nvme-cli prints
// them (nvme-print.c), "unrecognized" for values it does not name.
func TestDiscoveryNames(t *testing.T) {
	for _, tc := range []struct {
		got  fmt.Stringer
		want string
	}{
		{TrType(TrTypeRDMA), "rdma"}, {TrType(TrTypeFC), "fc"}, {TrType(TrTypeTCP), "tcp"}, {TrType(TrTypeLoop), "loop"}, {TrType(0), "unrecognized"},
		{AdrFam(AdrFamIPv4), "ipv4"}, {AdrFam(AdrFamIPv6), "ipv6"}, {AdrFam(AdrFamIB), "infiniband"}, {AdrFam(AdrFamFC), "fibre-channel"},
		{AdrFam(AdrFamIntraHost), "intra-host"}, {AdrFam(5), "unrecognized"},
		{SubType(SubTypeReferral), "discovery subsystem referral"}, {SubType(SubTypeNVM), "nvme subsystem"},
		{SubType(SubTypeDiscovery), "current discovery subsystem"}, {SubType(0), "unrecognized"},
		{TReq(TReqSecureChannelNotSpecified), "not specified"}, {TReq(TReqSecureChannelRequired), "required"},
		{TReq(TReqSecureChannelNotRequired), "not required"}, {TReq(3), "reserved"},
		{TReq(TReqSecureChannelNotRequired | TReqDisableSQFlow), "not required, sq flow control disable supported"},
		{EFlags(0), "none"}, {EFlags(EFlagsDuplicateReturnInfo | EFlagsNoCDCConnectivity), "duplicate discovery information, no cdc connectivity"},
		{EFlags(EFlagsExplicitDiscoveryConnections | 0x100), "explicit discovery connections"},
		{SecType(SecTypeNone), "none"}, {SecType(SecTypeTLS12), "tls"}, {SecType(SecTypeTLS13), "tls13"}, {SecType(3), "unrecognized"},
		{RDMAQPType(RDMAQPTypeConnected), "connected"}, {RDMAQPType(RDMAQPTypeDatagram), "datagram"}, {RDMAQPType(0), "unrecognized"},
		{RDMAPrType(RDMAPrTypeNotSpecific), "not specified"}, {RDMAPrType(RDMAPrTypeIB), "infiniband"}, {RDMAPrType(RDMAPrTypeRoCE), "roce"},
		{RDMAPrType(RDMAPrTypeRoCEv2), "roce-v2"}, {RDMAPrType(RDMAPrTypeIWARP), "iwarp"}, {RDMAPrType(6), "unrecognized"},
		{RDMACMS(RDMACMSRDMACM), "rdma-cm"}, {RDMACMS(2), "unrecognized"},
	} {
		if s := tc.got.String(); s != tc.want {
			t.Errorf("%T(%v) = %q, want %q", tc.got, tc.got, s, tc.want)
		}
	}
}
