package nvmeof

import (
	"errors"
	"fmt"
	"strings"
)

// Asymmetric Namespace Access (NVMe Base 2.0 §8.1): each namespace belongs
// to an ANA group, and each controller reports, for the port it is
// reached through, the group's state; hosts send I/O on the paths whose
// state is optimized (then non-optimized) and read the ANA log page when
// an ANA change notice arrives.
//
// The ANA log page (log identifier 0Ch, Figure 217):
//
//	+0   change count (8)   +8 number of group descriptors (2)   +10 reserved (6)
//	+16  descriptor: ANAGRPID (4), NNSID (4), change count (8), state (1),
//	     reserved (15), then NNSID namespace IDs (4 each) unless the
//	     Get Log Page asked for groups only (LSP bit 0, RGO)
const (
	LogANA = 0x0C

	ANALogHeaderSize = 16
	ANADescSize      = 32 // without its NSID list

	// ANALogRGO is the Get Log Page LSP bit that asks for the group
	// descriptors without NSID lists.
	ANALogRGO = 1 << 0

	// AENoticeANAChange is the notice (asynchronous event information
	// 03h) that the ANA log page changed.
	AENoticeANAChange = 0x03
)

// Identify Controller bits for ANA.
const (
	CMICANA              = 1 << 3  // ANA reporting supported
	OAESANAChange        = 1 << 11 // ANA change notices
	ANACAPOptimized      = 1 << 0
	ANACAPNonOptimized   = 1 << 1
	ANACAPInaccessible   = 1 << 2
	ANACAPPersistentLoss = 1 << 3
	ANACAPChange         = 1 << 4
	ANACAPGrpIDStatic    = 1 << 6 // ANAGRPID does not change while the namespace is attached
)

// Path related status (SCT 3, Figure 102): I/O sent on a path that is not
// in an accessible ANA state.
const (
	StatusANAPersistentLoss Status = SCTPath<<8 | 0x01
	StatusANAInaccessible   Status = SCTPath<<8 | 0x02
	StatusANATransition     Status = SCTPath<<8 | 0x03
)

// ANAState is an ANA group's state on a port (Figure 218).
type ANAState uint8

// ANA states.
const (
	ANAOptimized      ANAState = 0x01
	ANANonOptimized   ANAState = 0x02
	ANAInaccessible   ANAState = 0x03
	ANAPersistentLoss ANAState = 0x04
	ANAChange         ANAState = 0x0F
)

var anaStateNames = map[ANAState]string{
	ANAOptimized:      "optimized",
	ANANonOptimized:   "non-optimized",
	ANAInaccessible:   "inaccessible",
	ANAPersistentLoss: "persistent-loss",
	ANAChange:         "change",
}

func (s ANAState) String() string {
	if n, ok := anaStateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("ANA state %#x", uint8(s))
}

// Valid reports whether s is one of the defined states.
func (s ANAState) Valid() bool { _, ok := anaStateNames[s]; return ok }

// Accessible reports whether I/O may be sent in state s.
func (s ANAState) Accessible() bool { return s == ANAOptimized || s == ANANonOptimized }

// Status is the path related status for I/O refused in state s (success
// for an accessible state).
func (s ANAState) Status() Status {
	switch s {
	case ANAInaccessible:
		return StatusANAInaccessible
	case ANAPersistentLoss:
		return StatusANAPersistentLoss
	case ANAChange:
		return StatusANATransition
	}
	return StatusSuccess
}

// ParseANAState takes a state's name as nvmet's configfs writes it
// ("non-optimized", "persistent-loss") or SPDK's ("non_optimized").
func ParseANAState(s string) (ANAState, error) {
	n := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")
	for st, name := range anaStateNames {
		if n == name {
			return st, nil
		}
	}
	return 0, fmt.Errorf("ANA state %q: want optimized, non-optimized, inaccessible, persistent-loss or change", s)
}

// ANAGroupDesc is one group descriptor of the ANA log page.
type ANAGroupDesc struct {
	GroupID     uint32
	ChangeCount uint64
	State       ANAState
	NSIDs       []uint32 // nil when the log was read groups only
}

// ANALog is the ANA log page.
type ANALog struct {
	ChangeCount uint64
	Groups      []ANAGroupDesc
}

// Size is the encoded length: with the NSID lists, or groups only (rgo).
func (l *ANALog) Size(rgo bool) int {
	n := ANALogHeaderSize + len(l.Groups)*ANADescSize
	if !rgo {
		for _, g := range l.Groups {
			n += 4 * len(g.NSIDs)
		}
	}
	return n
}

// AppendEncode appends the log page to b, without the NSID lists if rgo.
func (l *ANALog) AppendEncode(b []byte, rgo bool) []byte {
	var hdr [ANALogHeaderSize]byte
	le.PutUint64(hdr[0:], l.ChangeCount)
	le.PutUint16(hdr[8:], uint16(len(l.Groups)))
	b = append(b, hdr[:]...)
	for _, g := range l.Groups {
		var d [ANADescSize]byte
		le.PutUint32(d[0:], g.GroupID)
		if !rgo {
			le.PutUint32(d[4:], uint32(len(g.NSIDs)))
		}
		le.PutUint64(d[8:], g.ChangeCount)
		d[16] = uint8(g.State)
		b = append(b, d[:]...)
		if !rgo {
			for _, id := range g.NSIDs {
				b = le.AppendUint32(b, id)
			}
		}
	}
	return b
}

// DecodeANALog parses an ANA log page. A descriptor with an NNSID of 0
// has a nil NSID list (as in a groups-only read).
func DecodeANALog(b []byte) (ANALog, error) {
	var l ANALog
	if len(b) < ANALogHeaderSize {
		return l, fmt.Errorf("ANA log: %d bytes, need at least %d", len(b), ANALogHeaderSize)
	}
	l.ChangeCount = le.Uint64(b[0:])
	n := int(le.Uint16(b[8:]))
	off := ANALogHeaderSize
	for i := range n {
		if len(b)-off < ANADescSize {
			return l, fmt.Errorf("ANA log: group descriptor %d of %d past the end (%d bytes)", i, n, len(b))
		}
		d := b[off : off+ANADescSize]
		g := ANAGroupDesc{GroupID: le.Uint32(d[0:]), ChangeCount: le.Uint64(d[8:]), State: ANAState(d[16] & 0x0F)}
		nnsid := le.Uint32(d[4:])
		off += ANADescSize
		if uint64(nnsid)*4 > uint64(len(b)-off) {
			return l, fmt.Errorf("ANA log: group %d lists %d namespaces past the end (%d bytes)", g.GroupID, nnsid, len(b))
		}
		if nnsid > 0 {
			g.NSIDs = make([]uint32, nnsid)
			for j := range g.NSIDs {
				g.NSIDs[j] = le.Uint32(b[off:])
				off += 4
			}
		}
		l.Groups = append(l.Groups, g)
	}
	return l, nil
}

// errANAGroup is returned for group ID 0, which names no group.
var errANAGroup = errors.New("ANA group ID 0 names no group: groups are 1 and up")

// CheckANAGroupID checks an ANA group identifier (1 to max).
func CheckANAGroupID(id, max uint32) error {
	if id == 0 {
		return errANAGroup
	}
	if id > max {
		return fmt.Errorf("ANA group %d: this target has groups 1 to %d", id, max)
	}
	return nil
}
