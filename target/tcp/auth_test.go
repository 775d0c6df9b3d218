package tcp

import (
	"crypto/rand"
	"testing"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
)

// authCmd sends an Authentication Send (msg != nil, in the capsule) or
// Receive (4 KiB) and returns the status and what came back.
func authCmd(t *testing.T, h *tcppeer.Host, msg []byte) (nvmeof.Status, []byte) {
	t.Helper()
	var sqe nvmeof.SQE
	sqe.SetCID(h.NextCID())
	sqe.SetFlags(nvmeof.FlagsSGL)
	if msg != nil {
		sqe.SetAuthSend(uint32(len(msg)))
		sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, uint32(len(msg)))
	} else {
		sqe.SetAuthReceive(nvmeof.AuthMaxLength)
		sqe.SGL().SetDataBlock(nvmeof.SGLTransport, 0, nvmeof.AuthMaxLength)
	}
	h.Write(h.Capsule(sqe, msg))
	var data []byte
	for {
		hd, b := h.ReadPDU()
		switch hd.Type {
		case nvmeof.PDUC2HData:
			data = append(data, b[hd.PDO:hd.PLen]...)
		case nvmeof.PDUCapsuleRsp:
			return nvmeof.CQEView(b[nvmeof.CHSize:]).Status(), data
		default:
			t.Fatalf("PDU type %#x", hd.Type)
		}
	}
}

// startAuthTarget starts a target on which hostNQN must authenticate, and
// dials it.
func startAuthTarget(t *testing.T) (*testTarget, *tcppeer.Host) {
	tt := startTarget(t, nil)
	key, err := dhchap.GenerateSecret(rand.Reader, dhchap.SHA256, 0)
	if err != nil {
		t.Fatal(err)
	}
	tt.ss.SetHosts(false, nil, map[string]target.HostKeys{hostNQN: {Key: key}})
	h := tcppeer.Dial(t, tt.addr())
	h.Init(false, false)
	return tt, h
}

// TestAuthRequiredFirst: a host that must authenticate gets ATR in the
// Connect response and can run nothing before it has; a host that keeps
// failing is disconnected.
func TestAuthRequiredFirst(t *testing.T) {
	tt, h := startAuthTarget(t)

	var sqe nvmeof.SQE
	sqe.SetConnect(0, 31, 0)
	sqe.SetCID(h.NextCID())
	sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, nvmeof.ConnectDataSize)
	cd := make([]byte, nvmeof.ConnectDataSize)
	if err := (&nvmeof.ConnectData{HostID: hostID, CntlID: nvmeof.CntlIDDynamic, SubNQN: testNQN, HostNQN: hostNQN}).Encode(cd); err != nil {
		t.Fatal(err)
	}
	h.Write(h.Capsule(sqe, cd))
	cqe := h.ReadRsp()
	if !cqe.Status().OK() || cqe.DW0()&nvmeof.ConnectAuthATR == 0 {
		t.Fatalf("connect: %v, DW0 %#x: want success with ATR (bit 17)", cqe.Status(), cqe.DW0())
	}

	// Before authentication: Property Get and Identify are refused.
	var pg nvmeof.SQE
	pg.SetPropertyGet(nvmeof.PropCAP, true)
	pg.SetCID(h.NextCID())
	h.Write(h.Capsule(pg, nil))
	if rsp := h.ReadRsp(); rsp.Status().Code() != nvmeof.StatusAuthRequired {
		st := rsp.Status()
		t.Fatalf("property get before authentication: %v, want Authentication Required", st)
	}
	var id nvmeof.SQE
	id.SetIdentify(nvmeof.CNSController, 0)
	id.SetCID(h.NextCID())
	id.SetFlags(nvmeof.FlagsSGL)
	id.SGL().SetDataBlock(nvmeof.SGLTransport, 0, nvmeof.IdentifySize)
	h.Write(h.Capsule(id, nil))
	if hd, b := h.ReadPDU(); hd.Type != nvmeof.PDUCapsuleRsp || nvmeof.CQEView(b[nvmeof.CHSize:]).Status().Code() != nvmeof.StatusAuthRequired {
		t.Fatalf("identify before authentication: PDU %#x, want a response with Authentication Required and no data", hd.Type)
	}
	// A Receive before any Negotiate is out of sequence.
	if st, _ := authCmd(t, h, nil); st.Code() != nvmeof.StatusCommandSequenceError {
		t.Fatalf("receive before negotiate: %v", st)
	}

	// Hashes the target does not know: Failure1, three times, then the
	// connection goes.
	neg := (&nvmeof.AuthNegotiateMsg{TID: 1, Hashes: []uint8{0x09}, DHGroups: []uint8{0}}).Append(nil)
	for i := range 3 {
		if st, _ := authCmd(t, h, neg); !st.OK() {
			t.Fatalf("negotiate %d: %v", i, st)
		}
		st, data := authCmd(t, h, nil)
		m, err := nvmeof.ParseAuthMessage(data)
		if !st.OK() || err != nil {
			t.Fatalf("receive %d: %v, %v", i, st, err)
		}
		if f, ok := m.(*nvmeof.AuthFailureMsg); !ok || f.ID != nvmeof.AuthFailure1 || f.Explanation != nvmeof.AuthFailHashUnusable {
			t.Fatalf("receive %d: %#v, want Failure1 (hash unusable)", i, m)
		}
	}
	h.ExpectEOF()
	if n := tt.tgt.Stats.AuthFailures.Load(); n != 3 {
		t.Errorf("%d failures counted, want 3", n)
	}
}

// TestAuthFailure2Answered: a host that gives up on the controller
// (Failure2) gets its command's response before the connection goes, as
// the Linux host waits for it.
func TestAuthFailure2Answered(t *testing.T) {
	tt, h := startAuthTarget(t)
	if _, st := h.ConnectAdmin(testNQN, hostNQN, hostID, 0); !st.OK() {
		t.Fatalf("connect: %v", st)
	}
	f2 := (&nvmeof.AuthFailureMsg{TID: 0, ID: nvmeof.AuthFailure2, Reason: nvmeof.AuthFailReason, Explanation: nvmeof.AuthFailFailed}).Append(nil)
	if st, _ := authCmd(t, h, f2); !st.OK() {
		t.Fatalf("failure2: %v", st)
	}
	h.ExpectEOF()
	// Closing the listener waits for its connections' goroutines.
	if err := tt.ln.Close(); err != nil {
		t.Fatal(err)
	}
	if n := tt.tgt.Controllers(); n != 0 {
		t.Errorf("%d controllers left", n)
	}
}
