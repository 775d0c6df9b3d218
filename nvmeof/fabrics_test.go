package nvmeof

import (
	"strings"
	"testing"
)

func TestConnectSQE(t *testing.T) {
	var c SQE
	c.SetCID(3)
	c.SetConnect(5, 127, 120000)
	c[46] = 0x04 // CATTR: disable SQ flow control
	// struct nvmf_connect_command: opcode@0 command_id@2 fctype@4 dptr@24
	// recfmt@40 qid@42 sqsize@44 cattr@46 kato@48.
	want := map[int]byte{0: 0x7F, 2: 3, 4: 0x01, 42: 5, 44: 127, 46: 0x04, 48: 0xC0, 49: 0xD4, 50: 0x01}
	for i, b := range c {
		if b != want[i] {
			t.Errorf("byte %d = %#x, want %#x", i, b, want[i])
		}
	}
	if c.Opcode() != OpFabrics || c.FCType() != FabricsConnect || c.RecFmt() != 0 || c.QID() != 5 ||
		c.SQSize() != 127 || c.CAttr() != 4 || c.KATO() != 120000 {
		t.Errorf("read back: fctype %d recfmt %d qid %d sqsize %d cattr %d kato %d",
			c.FCType(), c.RecFmt(), c.QID(), c.SQSize(), c.CAttr(), c.KATO())
	}
}

func TestConnectData(t *testing.T) {
	d := ConnectData{
		HostID:  [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		CntlID:  CntlIDDynamic,
		SubNQN:  "nqn.2024-01.io.flashpath:sub1",
		HostNQN: "nqn.2014-08.org.nvmexpress:uuid:01020304-0506-0708-090a-0b0c0d0e0f10",
	}
	b := make([]byte, ConnectDataSize)
	for i := range b {
		b[i] = 0xEE // Encode must clear the reserved bytes
	}
	if err := d.Encode(b); err != nil {
		t.Fatal(err)
	}
	// struct nvmf_connect_data: hostid@0 cntlid@16 subsysnqn@256 hostnqn@512.
	if b[0] != 1 || b[15] != 16 || b[16] != 0xFF || b[17] != 0xFF || b[18] != 0 || b[1023] != 0 {
		t.Errorf("layout: % x ... %x", b[:20], b[1023])
	}
	if !strings.HasPrefix(string(b[ConnectDataOffSubNQN:]), d.SubNQN+"\x00") ||
		!strings.HasPrefix(string(b[ConnectDataOffHostNQN:]), d.HostNQN+"\x00") {
		t.Error("NQNs not at 256 and 512")
	}
	got, err := DecodeConnectData(b)
	if err != nil || got != d {
		t.Errorf("DecodeConnectData = %+v, %v", got, err)
	}
	if ConnectDataOffCntlID != 16 {
		t.Error("ConnectDataOffCntlID != 16")
	}

	long := strings.Repeat("n", NQNMaxLen)
	for _, tc := range []struct {
		name    string
		edit    func(b []byte)
		wantErr string
	}{
		{"short", nil, "need 1024"},
		{"subnqn unterminated", func(b []byte) { copy(b[256:512], strings.Repeat("x", 256)) }, "SUBNQN: not NUL-terminated"},
		{"hostnqn too long", func(b []byte) { copy(b[512:], long+"x\x00") }, "HOSTNQN: 224 bytes"},
		{"hostnqn 223", func(b []byte) { copy(b[512:], long+"\x00") }, ""},
	} {
		buf := make([]byte, ConnectDataSize)
		_ = d.Encode(buf)
		if tc.edit == nil {
			buf = buf[:ConnectDataSize-1]
		} else {
			tc.edit(buf)
		}
		_, err := DecodeConnectData(buf)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.wantErr)
		}
	}

	if err := (&ConnectData{SubNQN: long + "x"}).Encode(b); err == nil {
		t.Error("Encode accepted a 224-byte NQN that DecodeConnectData rejects")
	}
	if err := (&ConnectData{SubNQN: long, HostNQN: long}).Encode(b); err != nil {
		t.Errorf("Encode of 223-byte NQNs: %v", err)
	}
	if err := d.Encode(make([]byte, 1023)); err == nil {
		t.Error("Encode into 1023 bytes succeeded")
	}
}

func TestConnectInvalidParam(t *testing.T) {
	for _, tc := range []struct {
		inData bool
		off    uint16
		want   uint32
	}{
		{true, ConnectDataOffSubNQN, 0x10100},
		{true, ConnectDataOffHostNQN, 0x10200},
		{true, ConnectDataOffCntlID, 0x10010},
		{false, 42, 42}, // QID in the SQE
		{false, 44, 44}, // SQSIZE
	} {
		if got := ConnectInvalidParam(tc.inData, tc.off); got != tc.want {
			t.Errorf("ConnectInvalidParam(%v, %d) = %#x, want %#x", tc.inData, tc.off, got, tc.want)
		}
	}
}

func TestProperty(t *testing.T) {
	var c SQE
	c.SetPropertyGet(PropCAP, true)
	// struct nvmf_property_get_command: fctype@4 attrib@40 offset@44.
	if c[0] != 0x7F || c[4] != 0x04 || c[40] != 1 || c[44] != 0 || c.PropAttrib() != 1 || c.PropOffset() != PropCAP {
		t.Errorf("Property Get CAP: % x", c[:])
	}
	c.Reset()
	c.SetPropertySet(PropCC, false, 0x460001)
	// struct nvmf_property_set_command: attrib@40 offset@44 value@48.
	if c[4] != 0x00 || c[40] != 0 || c[44] != 0x14 || c[48] != 0x01 || c[50] != 0x46 ||
		c.PropAttrib() != 0 || c.PropOffset() != PropCC || c.PropValue() != 0x460001 {
		t.Errorf("Property Set CC: % x", c[:])
	}
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"CAP", PropCAP, 0x00}, {"VS", PropVS, 0x08}, {"INTMS", PropINTMS, 0x0C}, {"INTMC", PropINTMC, 0x10},
		{"CC", PropCC, 0x14}, {"CSTS", PropCSTS, 0x1C}, {"NSSR", PropNSSR, 0x20},
		{"VS1_3", VS1_3, 0x10300}, {"VS1_4", VS1_4, 0x10400}, {"VS2_0", VS2_0, 0x20000},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	var d SQE
	d.SetDisconnect()
	if d.Opcode() != OpFabrics || d.FCType() != FabricsDisconnect {
		t.Errorf("Disconnect: % x", d[:8])
	}
}

func TestCAPCCCSTS(t *testing.T) {
	c := MakeCAP(1023, 30)
	// NVMe Base 2.0 Figure 36: MQES 15:0, CQR 16, TO 31:24, CSS 44:37 (bit 37: NVM).
	if uint64(c) != 1023|1<<16|30<<24|1<<37 {
		t.Errorf("MakeCAP = %#x", uint64(c))
	}
	if c.MQES() != 1023 || c.Timeout() != 30 {
		t.Errorf("MQES %d TO %d", c.MQES(), c.Timeout())
	}
	// CC: EN 0, CSS 6:4, MPS 10:7, SHN 15:14, IOSQES 19:16, IOCQES 23:20.
	if CCValue(true) != 0x460001 || CCValue(false) != 0x460000 {
		t.Errorf("CCValue = %#x / %#x", CCValue(true), CCValue(false))
	}
	if CCShnNormal != 0x4000 || CCShnAbrupt != 0x8000 || CCShnMask != 0xC000 || CCIOSQESShift != 16 || CCIOCQESShift != 20 {
		t.Error("CC shutdown bits differ from the kernel's NVME_CC_SHN_*")
	}
	// CSTS: RDY 0, CFS 1, SHST 3:2.
	if CSTSReady != 1 || CSTSFatal != 2 || CSTSShstOccuring != 4 || CSTSShstComplete != 8 || CSTSShstMask != 0xC {
		t.Error("CSTS bits differ from the kernel's NVME_CSTS_*")
	}
}

func TestFeatures(t *testing.T) {
	var c SQE
	c.SetFeatures(FeatNumQueues, 0x003F003F)
	if c.Opcode() != AdminSetFeatures || c.FID() != 7 || c.CDW(11) != 0x003F003F {
		t.Errorf("Set Features: % x", c[:])
	}
	c.SetCDW(10, 1<<31|2<<8|FeatKeepAlive)
	if !c.FeatureSave() || c.FeatureSel() != 2 || c.FID() != 0x0F {
		t.Errorf("save %v sel %d fid %#x", c.FeatureSave(), c.FeatureSel(), c.FID())
	}
	c.Reset()
	c.GetFeatures(FeatHostID)
	if c.Opcode() != AdminGetFeatures || c.FID() != 0x81 || c.FeatureSave() || c.FeatureSel() != 0 {
		t.Errorf("Get Features: % x", c[:])
	}
	// NVMe Base 2.0 Figure 146: type 2:0, info 15:8, log page 23:16.
	if got := AsyncEventDW0(AEReasonNotice, AENoticeNSAttrChanged, LogChangedNSList); got != 0x040002 {
		t.Errorf("AsyncEventDW0 = %#x, want 0x40002", got)
	}
}
