package target

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

const cptplOn, cptplOff = 3 << 30, 2 << 30

// ptplHosts is resvHosts on a target whose namespace 1 has a PTPL file:
// one run of the target (a restart is a new call with the same file).
func ptplHosts(t *testing.T, file string) (admin, io [3]*peer) {
	t.Helper()
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	be, err := backend.NewMem(1<<20, testBlock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.AddNamespace(NamespaceConfig{NSID: 1, Backend: be, PTPLFile: file}); err != nil {
		t.Fatal(err)
	}
	return connectHosts(t, tgt)
}

// ptplFeature gets or sets Reservation Persistence of nsid.
func ptplFeature(p *peer, nsid uint32, set bool, v uint32) *Request {
	sqe := getFeatSQE(nvmeof.FeatResvPersist)
	if set {
		sqe = setFeatSQE(nvmeof.FeatResvPersist, v)
	}
	sqe.SetNSID(nsid)
	return p.exec(sqe, nil)
}

func exists(t *testing.T, file string) bool {
	t.Helper()
	_, err := os.Stat(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// TestPTPLSurvivesRestart: a host turns persistence through power loss
// on; the registrations and the reservation are in the file, in SPDK's
// format, and a target started again with the file enforces them. Turned
// off, the file goes and the next start has none.
func TestPTPLSurvivesRestart(t *testing.T) {
	const ok, conflict = nvmeof.StatusSuccess, nvmeof.StatusReservationConflict
	file := filepath.Join(t.TempDir(), "ns1.ptpl")
	admin, io := ptplHosts(t, file)
	r := admin[0].ok(identifySQE(nvmeof.CNSNamespace, 1), make([]byte, nvmeof.IdentifySize))
	if id, _ := nvmeof.DecodeIdentifyNamespace(r.Data); id.RESCAP&nvmeof.RescapPTPL == 0 {
		t.Errorf("RESCAP %#x lacks persistence through power loss", id.RESCAP)
	}
	a, b := io[0], io[1]
	a.register(ok, nvmeof.ResvRegister, 0, 0xA)
	if exists(t, file) {
		t.Fatal("file written with persistence off")
	}
	b.register(ok, nvmeof.ResvRegister|cptplOn, 0, 0xB)
	a.acquire(ok, nvmeof.ResvAcquire, nvmeof.ResvWriteExclusive, 0xA, 0)
	if rep := a.report(); !rep.PTPLS {
		t.Error("Report: PTPLS not set")
	}
	if r := ptplFeature(admin[2], 1, false, 0); r.Rsp.DW0() != 1 {
		t.Errorf("Get Features Reservation Persistence: %#x", r.Rsp.DW0())
	}

	b2, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var f ptplJSON
	if err := json.Unmarshal(b2, &f); err != nil {
		t.Fatal(err)
	}
	nsUUID := admin[0].q.ctrl.subsys.Namespace(1).UUID
	want := ptplJSON{PTPL: true, RType: nvmeof.ResvWriteExclusive, CRKey: 0xA, BdevUUID: uuid.UUID(nsUUID).String(),
		HolderUUID: uuid.UUID(hostIDA).String(), Registrants: []ptplReg{{0xA, uuid.UUID(hostIDA).String()}, {0xB, uuid.UUID(hostIDB).String()}}}
	if b, w := mustJSON(t, f), mustJSON(t, want); b != w {
		t.Errorf("file %s, want %s", b, w)
	}

	// The target restarts.
	admin, io = ptplHosts(t, file)
	a, b, c := io[0], io[1], io[2]
	rep := c.report()
	if !rep.PTPLS || rep.Type != nvmeof.ResvWriteExclusive || len(rep.List) != 2 ||
		rep.List[0].HostID != hostIDA || !rep.List[0].Holds || rep.List[0].Key != 0xA ||
		rep.List[1].HostID != hostIDB || rep.List[1].Holds || rep.List[1].Key != 0xB {
		t.Fatalf("after the restart: %+v", rep)
	}
	if st := b.io(nvmeof.NVMWrite); st != conflict {
		t.Errorf("B's write under A's restored reservation: %v", st)
	}
	if st := a.io(nvmeof.NVMWrite); st != ok {
		t.Errorf("A's write: %v", st)
	}
	b.acquire(ok, nvmeof.ResvPreempt, nvmeof.ResvExclusiveAccess, 0xB, 0xA)
	if st := a.io(nvmeof.NVMRead); st != conflict {
		t.Errorf("A's read after B preempted it: %v", st)
	}

	// Again: B's preemption was kept too. Then B turns persistence off.
	_, io = ptplHosts(t, file)
	if rep := io[2].report(); rep.Type != nvmeof.ResvExclusiveAccess || len(rep.List) != 1 || rep.List[0].HostID != hostIDB {
		t.Fatalf("after the second restart: %+v", rep)
	}
	io[1].register(ok, nvmeof.ResvRegister|cptplOff, 0, 0xB)
	if exists(t, file) {
		t.Error("file kept with persistence turned off")
	}
	_, io = ptplHosts(t, file)
	if rep := io[2].report(); rep.PTPLS || rep.Type != 0 || len(rep.List) != 0 {
		t.Errorf("restored with persistence off: %+v", rep)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestPTPLFeature: Set Features Reservation Persistence turns persistence
// on and off, for one namespace or all; a namespace without a file
// refuses it.
func TestPTPLFeature(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ns1.ptpl")
	admin, io := ptplHosts(t, file)
	io[0].register(nvmeof.StatusSuccess, nvmeof.ResvRegister, 0, 0xA)
	if r := ptplFeature(admin[0], 1, true, 1); !r.Status().OK() || !exists(t, file) {
		t.Fatalf("on: %v, file %v", r.Status(), exists(t, file))
	}
	if r := ptplFeature(admin[0], 0xFFFFFFFF, true, 0); !r.Status().OK() || exists(t, file) {
		t.Fatalf("off for all: %v, file %v", r.Status(), exists(t, file))
	}
	if r := ptplFeature(admin[0], 1, true, 2); r.Status().Code() != nvmeof.StatusInvalidField {
		t.Errorf("reserved bit: %v", r.Status())
	}
	ns := admin[0].q.ctrl.subsys
	addMemNS(t, ns, 2, 1<<20, testBlock)
	if r := ptplFeature(admin[0], 2, true, 1); r.Status().Code() != nvmeof.StatusInvalidField {
		t.Errorf("on, without a ptpl_file: %v", r.Status())
	}
	if r := ptplFeature(admin[0], 0xFFFFFFFF, true, 1); !r.Status().OK() || !exists(t, file) {
		t.Fatalf("on for all: %v, file %v", r.Status(), exists(t, file))
	}
	io[1].register(nvmeof.StatusSuccess, nvmeof.ResvRegister|cptplOn, 0, 0xB) // namespace 1 has a file
	sqe := resvSQE(nvmeof.NVMResvRegister, nvmeof.ResvRegister|cptplOn)
	sqe.SetNSID(2)
	if r := io[2].exec(sqe, keys(0, 0xC)); r.Status().Code() != nvmeof.StatusInvalidField {
		t.Errorf("CPTPL=3 on a namespace without a ptpl_file: %v", r.Status())
	}
}

// TestPTPLWriteFails: where the file cannot be written, the command
// fails with Internal Error and changes nothing: no registration, no
// preemption.
func TestPTPLWriteFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ns1.ptpl")
	_, io := ptplHosts(t, file)
	a, b, c := io[0], io[1], io[2]
	a.register(nvmeof.StatusSuccess, nvmeof.ResvRegister|cptplOn, 0, 0xA)
	b.register(nvmeof.StatusSuccess, nvmeof.ResvRegister, 0, 0xB)
	a.acquire(nvmeof.StatusSuccess, nvmeof.ResvAcquire, nvmeof.ResvWriteExclusive, 0xA, 0)
	// A directory takes the file's name: nothing can be renamed over it.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(file, 0o700); err != nil {
		t.Fatal(err)
	}
	c.register(nvmeof.StatusInternalError, nvmeof.ResvRegister, 0, 0xC)
	b.acquire(nvmeof.StatusInternalError, nvmeof.ResvPreemptAndAbort, nvmeof.ResvExclusiveAccess, 0xB, 0xA)
	a.release(nvmeof.StatusInternalError, nvmeof.ResvRelease, nvmeof.ResvWriteExclusive, 0xA)
	rep := c.report()
	if rep.Type != nvmeof.ResvWriteExclusive || len(rep.List) != 2 || !rep.List[0].Holds || !rep.PTPLS {
		t.Fatalf("after the failed commands: %+v", rep)
	}
	if st := a.io(nvmeof.NVMWrite); st != nvmeof.StatusSuccess {
		t.Errorf("A's write: %v", st)
	}
	if st := b.io(nvmeof.NVMWrite); st != nvmeof.StatusReservationConflict {
		t.Errorf("B's write: %v", st)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if es, _ := os.ReadDir(filepath.Dir(file)); len(es) != 0 {
		t.Errorf("the failed writes left %v", es)
	}
	c.register(nvmeof.StatusSuccess, nvmeof.ResvRegister, 0, 0xC)
	_, io = ptplHosts(t, file)
	if rep := io[0].report(); len(rep.List) != 3 {
		t.Errorf("after the restart: %+v", rep)
	}
}

// TestPTPLBadFile: a file that cannot be the namespace's is refused when
// the namespace is added, saying what to do.
func TestPTPLBadFile(t *testing.T) {
	dir := t.TempDir()
	a := uuid.UUID(hostIDA).String()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"another namespace's", `{"ptpl": true, "rtype": 0, "crkey": 0, "bdev_uuid": "00000000-0000-4000-8000-000000000001", "registrants": []}`, "another namespace"},
		{"not JSON", `{"ptpl": tru`, "fix or remove"},
		{"unknown field", `{"ptpl": true, "registrantz": []}`, "unknown field"},
		{"holder not registered", `{"ptpl": true, "rtype": 1, "crkey": 1, "bdev_uuid": "@", "holder_uuid": "` + a + `", "registrants": []}`, "no registrant"},
		{"type 7", `{"ptpl": true, "rtype": 7, "bdev_uuid": "@", "registrants": [{"rkey": 1, "host_uuid": "` + a + `"}]}`, "rtype 7"},
		{"registered twice", `{"ptpl": true, "bdev_uuid": "@", "registrants": [{"rkey": 1, "host_uuid": "` + a + `"}, {"rkey": 2, "host_uuid": "` + a + `"}]}`, "twice"},
		{"no directory", "", "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := newTestTarget(t)
			ss := addSubsys(t, tgt, testNQN)
			nsUUID := uuid.MustParse("8a8b6f1c-5f3a-4b5e-9c1d-2e3f4a5b6c7d")
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if tc.content == "" {
				file = filepath.Join(dir, "none", "ns1.ptpl")
			} else if err := os.WriteFile(file, []byte(strings.ReplaceAll(tc.content, "@", nsUUID.String())), 0o600); err != nil {
				t.Fatal(err)
			}
			be, err := backend.NewMem(1<<20, testBlock)
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			_, err = ss.AddNamespace(NamespaceConfig{NSID: 1, Backend: be, UUID: nsUUID, PTPLFile: file})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ptpl_file") {
				t.Fatalf("%v, want an error with %q", err, tc.want)
			}
			if ss.Namespace(1) != nil {
				t.Error("namespace added")
			}
		})
	}
}

// TestPTPLSPDKFile: a file that SPDK's nvmf_tgt wrote (lib/nvmf, host
// B holding Exclusive Access - Registrants Only, A registered too) is
// restored as SPDK would, and one it wrote on turning persistence off
// (empty) restores nothing.
func TestPTPLSPDKFile(t *testing.T) {
	spdkFile, err := os.ReadFile(filepath.Join("testdata", "ptpl", "spdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f ptplJSON
	if err := json.Unmarshal(spdkFile, &f); err != nil {
		t.Fatal(err)
	}
	nsUUID := uuid.MustParse(f.BdevUUID)
	st, err := parsePTPL(spdkFile, nsUUID)
	if err != nil {
		t.Fatal(err)
	}
	if !st.ptpl || st.rtype != nvmeof.ResvExclusiveAccessRegOnly || len(st.regs) != 2 || st.holder != st.regs[1].host || st.regs[1].key != f.CRKey {
		t.Fatalf("restored %+v from %s", st, spdkFile)
	}
	var s resvState
	s.uuid, s.regs, s.rtype, s.holder, s.ptpl = nsUUID, st.regs, st.rtype, st.holder, true
	var again ptplJSON
	if err := json.Unmarshal(s.encodePTPL(), &again); err != nil {
		t.Fatal(err)
	}
	if b, w := mustJSON(t, again), mustJSON(t, f); b != w {
		t.Errorf("written back as %s, SPDK wrote %s", b, w)
	}
	if st, err := parsePTPL(nil, nsUUID); err != nil || st.ptpl || len(st.regs) != 0 {
		t.Errorf("empty file: %+v, %v", st, err)
	}
}

// FuzzPTPLFile: no file panics the parser; what it accepts is a state
// the reservation code can hold, and writes back as the same state.
func FuzzPTPLFile(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "ptpl", "spdk.json"))
	if err != nil {
		f.Fatal(err)
	}
	var sf ptplJSON
	if err := json.Unmarshal(seed, &sf); err != nil {
		f.Fatal(err)
	}
	nsUUID := uuid.MustParse(sf.BdevUUID)
	f.Add(seed)
	f.Add([]byte(`{"ptpl": true, "rtype": 6, "crkey": 0, "bdev_uuid": "` + sf.BdevUUID + `", "registrants": [{"rkey": 0, "host_uuid": "` + sf.Registrants[0].HostUUID + `"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parsePTPL(b, nsUUID)
		if err != nil || !st.ptpl {
			return
		}
		switch {
		case len(st.regs) > MaxRegistrants, st.rtype > nvmeof.ResvExclusiveAccessAllRegs:
			t.Fatalf("accepted %+v", st)
		case st.rtype != 0 && st.find(st.holder) < 0:
			t.Fatalf("holder %x not registered", st.holder)
		}
		s := resvState{uuid: nsUUID, resvData: st}
		again, err := parsePTPL(s.encodePTPL(), nsUUID)
		if err != nil || !reflect.DeepEqual(again, st) {
			t.Fatalf("written back: %+v (%v), was %+v", again, err, st)
		}
	})
}
