package nvmeof

import (
	"reflect"
	"testing"
)

func testANALog() ANALog {
	return ANALog{ChangeCount: 9, Groups: []ANAGroupDesc{
		{GroupID: 1, ChangeCount: 4, State: ANAOptimized, NSIDs: []uint32{1, 3}},
		{GroupID: 2, ChangeCount: 9, State: ANAInaccessible, NSIDs: []uint32{2}},
		{GroupID: 3, ChangeCount: 1, State: ANANonOptimized},
	}}
}

// TestANALog: the layout the Linux host reads (struct nvme_ana_rsp_hdr,
// nvme_ana_group_desc), with and without NSID lists.
func TestANALog(t *testing.T) {
	l := testANALog()
	b := l.AppendEncode(nil, false)
	if len(b) != l.Size(false) || len(b) != 16+3*32+3*4 {
		t.Fatalf("%d bytes, Size %d", len(b), l.Size(false))
	}
	if le.Uint64(b[0:]) != 9 || le.Uint16(b[8:]) != 3 {
		t.Errorf("header % x", b[:16])
	}
	d := b[16:]
	if le.Uint32(d[0:]) != 1 || le.Uint32(d[4:]) != 2 || le.Uint64(d[8:]) != 4 || d[16] != 1 || le.Uint32(d[32:]) != 1 || le.Uint32(d[36:]) != 3 {
		t.Errorf("first descriptor % x", d[:40])
	}
	got, err := DecodeANALog(b)
	if err != nil || !reflect.DeepEqual(got, l) {
		t.Fatalf("decode: %+v %v", got, err)
	}
	rgo := l.AppendEncode(nil, true)
	if len(rgo) != l.Size(true) || len(rgo) != 16+3*32 || le.Uint32(rgo[16+4:]) != 0 {
		t.Errorf("groups only: %d bytes, NNSID %d", len(rgo), le.Uint32(rgo[16+4:]))
	}
	if g, err := DecodeANALog(rgo); err != nil || len(g.Groups) != 3 || g.Groups[0].NSIDs != nil || g.Groups[1].State != ANAInaccessible {
		t.Errorf("groups only decoded: %+v %v", g, err)
	}
	for _, short := range [][]byte{b[:15], b[:16+31], b[:16+32+4]} {
		if _, err := DecodeANALog(short); err == nil {
			t.Errorf("%d bytes: no error", len(short))
		}
	}
}

func TestANAState(t *testing.T) {
	for in, want := range map[string]ANAState{"optimized": ANAOptimized, "non_optimized": ANANonOptimized, "Non-Optimized": ANANonOptimized,
		"inaccessible": ANAInaccessible, "persistent-loss": ANAPersistentLoss, "change": ANAChange} {
		if got, err := ParseANAState(in); err != nil || got != want {
			t.Errorf("ParseANAState(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseANAState("fast"); err == nil {
		t.Error("ParseANAState(fast): no error")
	}
	for s, st := range map[ANAState]Status{ANAOptimized: StatusSuccess, ANANonOptimized: StatusSuccess, ANAInaccessible: StatusANAInaccessible,
		ANAPersistentLoss: StatusANAPersistentLoss, ANAChange: StatusANATransition} {
		if s.Status() != st || s.Accessible() != st.OK() {
			t.Errorf("%v: status %v accessible %v", s, s.Status(), s.Accessible())
		}
	}
	// The kernel's NVME_SC_ANA_* values.
	if StatusANAPersistentLoss != 0x301 || StatusANAInaccessible != 0x302 || StatusANATransition != 0x303 {
		t.Error("ANA status codes differ from the kernel's")
	}
	if err := CheckANAGroupID(0, 4); err == nil {
		t.Error("group 0 accepted")
	}
	if err := CheckANAGroupID(5, 4); err == nil {
		t.Error("group 5 of 4 accepted")
	}
}

func FuzzANALog(f *testing.F) {
	l := testANALog()
	f.Add(l.AppendEncode(nil, false))
	f.Add(l.AppendEncode(nil, true))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := DecodeANALog(b)
		if err != nil {
			return
		}
		if l.Size(false) > len(b) {
			t.Fatalf("decoded %d bytes of groups from %d", l.Size(false), len(b))
		}
		l2, err := DecodeANALog(l.AppendEncode(nil, false))
		if err != nil || !reflect.DeepEqual(l2, l) {
			t.Fatalf("round trip\n%+v\n%+v, %v", l, l2, err)
		}
	})
}
