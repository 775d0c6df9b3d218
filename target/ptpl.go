package target

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/uuid"

	"github.com/flashpath/flashpath/internal/durable"
	"github.com/flashpath/flashpath/nvmeof"
)

// Persistence through power loss (PTPL, NVMe Base 2.0 §8.19.8). A
// namespace given a file (NamespaceConfig.PTPLFile, SPDK's ptpl_file) is
// PTPL capable (Identify Namespace RESCAP bit 0). Hosts turn persistence
// on with Reservation Register's CPTPL=3 (nvme resv-register --cptpl=3) or
// Set Features Reservation Persistence, and off with CPTPL=2 or the
// feature. While it is on, each change of the registrations or the
// reservation is in the file, written to a new file, synced and renamed
// over the old, before the command that made it completes; where that
// fails the command fails with Internal Error and changes nothing. When
// the namespace is added again (a restarted target), the file's state is
// restored. Turning persistence off removes the file.
//
// The file is SPDK's (lib/nvmf), so a namespace moves between SPDK's
// nvmf_tgt and flashpath with its reservations. The generation count is
// not kept (nor by SPDK).

// ptplJSON is the file's content.
type ptplJSON struct {
	PTPL        bool      `json:"ptpl"`
	RType       uint32    `json:"rtype"`
	CRKey       uint64    `json:"crkey"`
	BdevUUID    string    `json:"bdev_uuid"`
	HolderUUID  string    `json:"holder_uuid"`
	Registrants []ptplReg `json:"registrants"`
}

type ptplReg struct {
	RKey     uint64 `json:"rkey"`
	HostUUID string `json:"host_uuid"`
}

// parsePTPL decodes and checks a PTPL file of the namespace with UUID ns.
// An empty file (SPDK's, once persistence was turned off) restores
// nothing.
func parsePTPL(b []byte, ns [16]byte) (resvData, error) {
	var st resvData
	if len(bytes.TrimSpace(b)) == 0 {
		return st, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f ptplJSON
	if err := dec.Decode(&f); err != nil {
		return st, err
	}
	if dec.More() {
		return st, errors.New("more than one JSON object")
	}
	if !f.PTPL {
		return st, nil // persistence was off: nothing was kept
	}
	if u, err := uuid.Parse(f.BdevUUID); err != nil || u != uuid.UUID(ns) {
		return st, fmt.Errorf("bdev_uuid %q: it is the file of another namespace (this one is %s): give each namespace its own file", f.BdevUUID, uuid.UUID(ns))
	}
	if len(f.Registrants) > MaxRegistrants {
		return st, fmt.Errorf("%d registrants, at most %d", len(f.Registrants), MaxRegistrants)
	}
	if f.RType > nvmeof.ResvExclusiveAccessAllRegs {
		return st, fmt.Errorf("rtype %d: reservation types are 1 to 6 (0: none held)", f.RType)
	}
	st.ptpl, st.rtype = true, uint8(f.RType)
	for i, g := range f.Registrants {
		u, err := uuid.Parse(g.HostUUID)
		if err != nil {
			return st, fmt.Errorf("registrants[%d].host_uuid %q: %v", i, g.HostUUID, err)
		}
		if st.find(u) >= 0 {
			return st, fmt.Errorf("registrants[%d].host_uuid %s: registered twice", i, u)
		}
		st.regs = append(st.regs, registrant{host: u, key: g.RKey})
	}
	switch {
	case st.rtype == 0:
	case len(st.regs) == 0:
		return st, fmt.Errorf("rtype %d held with no registrant", st.rtype)
	case allRegs(st.rtype):
		st.holder = st.regs[0].host
	default:
		u, err := uuid.Parse(f.HolderUUID)
		if err != nil || st.find(u) < 0 {
			return st, fmt.Errorf("holder_uuid %q: not a registrant", f.HolderUUID)
		}
		st.holder = u
	}
	return st, nil
}

// encodePTPL is the file's content for the state (mu held).
func (s *resvState) encodePTPL() []byte {
	f := ptplJSON{PTPL: true, RType: uint32(s.rtype), BdevUUID: uuid.UUID(s.uuid).String(), Registrants: make([]ptplReg, len(s.regs))}
	for i, g := range s.regs {
		f.Registrants[i] = ptplReg{RKey: g.key, HostUUID: uuid.UUID(g.host).String()}
	}
	if s.rtype != 0 {
		holder := s.holder
		if allRegs(s.rtype) && s.find(holder) < 0 {
			holder = s.regs[0].host
		}
		f.CRKey = s.regs[s.find(holder)].key
		if !allRegs(s.rtype) {
			f.HolderUUID = uuid.UUID(holder).String()
		}
	}
	b, _ := json.MarshalIndent(f, "", "  ") // cannot fail: plain fields
	return append(b, '\n')
}

// openPTPL makes the state persistence capable with file, restoring what
// the file kept. The namespace is not yet visible to hosts.
func (s *resvState) openPTPL(file string, ns [16]byte) error {
	dir := filepath.Dir(file)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("ptpl_file %s: directory %s does not exist: create it, or leave ptpl_file out", file, dir)
	}
	b, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ptpl_file: %w", err)
	}
	st, err := parsePTPL(b, ns)
	if err != nil {
		return fmt.Errorf("ptpl_file %s: %w (fix or remove the file: removing it drops the registrations it kept)", file, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.file, s.uuid = file, ns
	s.resvData = st
	s.publish()
	return nil
}

// storePTPL writes the state into the file, durably, or removes the file
// when persistence is off. Called with mu held.
func (s *resvState) storePTPL() error {
	if !s.ptpl {
		return durable.Remove(s.file)
	}
	return durable.WriteFile(s.file, s.encodePTPL(), 0o600)
}

// undo is the state before a command, to go back to if persisting its
// change fails; nil where persistence is not possible (mu held).
func (s *resvState) undo() *resvData {
	if s.file == "" {
		return nil
	}
	u := s.resvData
	u.regs = slices.Clone(s.regs)
	return &u
}

// persist makes a command's change durable where persistence is on, or
// was turned off by it. Where the file cannot be written, the state goes
// back to u and the command fails with Internal Error, no event and no
// host preempted. Deferred, with mu held, by each command that changes
// the state.
func (s *resvState) persist(u *resvData, st *nvmeof.Status, ev *resvEvents, gone *[][16]byte) {
	if u == nil || !st.OK() || !s.ptpl && !u.ptpl {
		return
	}
	err := s.storePTPL()
	if err == nil {
		return
	}
	log := s.log
	if log == nil {
		log = slog.Default()
	}
	log.Error("reservation: cannot persist the change through power loss: command failed (check the ptpl_file's disk and permissions)",
		"ptpl_file", s.file, "err", err)
	s.resvData = *u
	s.publish()
	*st = nvmeof.StatusInternalError | nvmeof.StatusDNR
	*ev = nil
	if gone != nil {
		*gone = nil
	}
}

// setPTPL turns persistence on (true) or off where the state is capable
// (Set Features Reservation Persistence). Called without mu.
func (s *resvState) setPTPL(on bool) (st nvmeof.Status) {
	if s.file == "" {
		if on {
			return nvmeof.StatusInvalidField | nvmeof.StatusDNR // no ptpl_file
		}
		return nvmeof.StatusSuccess
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var ev resvEvents
	defer s.persist(s.undo(), &st, &ev, nil)
	s.ptpl = on
	return nvmeof.StatusSuccess
}

// ptplOn reports whether persistence through power loss is on.
func (s *resvState) ptplOn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ptpl
}
