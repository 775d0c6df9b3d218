package nvmeof

import (
	"errors"
	"fmt"
)

// In-band authentication: the Authentication Send and Receive fabrics
// commands (NVMe Base 2.0 §6.2, §6.3) and the DH-HMAC-CHAP messages they
// carry (NVMe Base 2.0 §8.13.5.x, Figures 541-549).
//
//	host                                       controller
//	Connect ─────────────────────────────────▶ response DW0: CNTLID | ATR
//	AUTH_Send    Negotiate (hashes, DH groups) ▶
//	AUTH_Receive ◀──────────── Challenge (hash, DH group, S1, C1, controller DH value)
//	AUTH_Send    Reply (R1, C2, S2, host DH value) ▶
//	AUTH_Receive ◀──────────── Success1 (R2 when the host sent C2) or Failure1
//	AUTH_Send    Success2 (only after checking R2) or Failure2 ▶
//
// Until the transaction succeeds, a queue that must authenticate refuses
// every other command with Authentication Required.

// Connect response DW0 AUTHREQ bits (NVMe-oF: Connect response, Figure 20 of
// Base 2.0 §6.3; the kernel's NVME_CONNECT_AUTHREQ_*).
const (
	ConnectAuthATR  = 1 << 17 // an authentication transaction is required
	ConnectAuthASCR = 1 << 18 // authentication and a secure channel are required
)

// Authentication Send / Receive fields.
const (
	AuthSECPDHCHAP = 0xE9 // SECP: the DH-HMAC-CHAP security protocol
	AuthSPSP       = 0x01 // SPSP0 and SPSP1 for DH-HMAC-CHAP
	// AuthMaxLength bounds TL and AL: the largest DH-HMAC-CHAP message,
	// a Reply with SHA-512 and an ffdhe8192 value, is 1,168 bytes, and the
	// Linux host asks for 4,096 bytes on every Authentication Receive.
	AuthMaxLength = 4096
)

// StatusAuthRequired refuses a command on a queue that has not
// authenticated yet (NVMe Base 2.0 Figure 102: Authentication Required).
const StatusAuthRequired Status = 0x1<<8 | 0x91

// SECP is the Authentication Send/Receive security protocol (byte 43).
func (c *SQE) SECP() uint8 { return c[43] }

// SPSP returns the security protocol specific fields SPSP0 and SPSP1.
func (c *SQE) SPSP() (uint8, uint8) { return c[41], c[42] }

// AuthLength is TL of Authentication Send or AL of Authentication Receive.
func (c *SQE) AuthLength() uint32 { return le.Uint32(c[44:]) }

// SetAuthSend fills an Authentication Send of tl bytes for DH-HMAC-CHAP.
func (c *SQE) SetAuthSend(tl uint32) { c.setAuth(FabricsAuthSend, tl) }

// SetAuthReceive fills an Authentication Receive of al bytes for DH-HMAC-CHAP.
func (c *SQE) SetAuthReceive(al uint32) { c.setAuth(FabricsAuthRecv, al) }

func (c *SQE) setAuth(fctype uint8, n uint32) {
	c.SetOpcode(OpFabrics)
	c.SetFCType(fctype)
	c[40] = 0
	c[41], c[42], c[43] = AuthSPSP, AuthSPSP, AuthSECPDHCHAP
	le.PutUint32(c[44:], n)
}

// DH-HMAC-CHAP message types (AUTH_TYPE) and identifiers (AUTH_ID).
const (
	AuthTypeCommon = 0x00 // Negotiate, Failure1, Failure2
	AuthTypeDHCHAP = 0x01 // Challenge, Reply, Success1, Success2

	AuthNegotiate = 0x00
	AuthChallenge = 0x01
	AuthReply     = 0x02
	AuthSuccess1  = 0x03
	AuthSuccess2  = 0x04
	AuthFailure2  = 0xF0
	AuthFailure1  = 0xF1

	// AuthIDDHCHAP is the AUTHID of a DH-HMAC-CHAP protocol descriptor.
	AuthIDDHCHAP = 0x01
)

// Failure reason code (RC) and explanations (RCE) of Failure1 and Failure2.
const (
	AuthFailReason = 0x01 // RC: authentication failure

	AuthFailFailed           = 0x01
	AuthFailNotUsable        = 0x02
	AuthFailConcatMismatch   = 0x03
	AuthFailHashUnusable     = 0x04
	AuthFailDHGroupUnusable  = 0x05
	AuthFailIncorrectPayload = 0x06
	AuthFailIncorrectMessage = 0x07
)

var authFailNames = map[uint8]string{
	AuthFailFailed:           "authentication failed",
	AuthFailNotUsable:        "authentication protocol not usable",
	AuthFailConcatMismatch:   "secure channel concatenation mismatch",
	AuthFailHashUnusable:     "hash function not usable",
	AuthFailDHGroupUnusable:  "DH group not usable",
	AuthFailIncorrectPayload: "incorrect payload",
	AuthFailIncorrectMessage: "incorrect protocol message",
}

// AuthFailName names a failure explanation.
func AuthFailName(rce uint8) string {
	if s, ok := authFailNames[rce]; ok {
		return s
	}
	return fmt.Sprintf("reason %#x", rce)
}

// Message sizes.
const (
	authHeaderSize     = 16 // Challenge, Reply, Success1, Success2
	authNegotiateSize  = 8  // before the protocol descriptors
	authDescriptorSize = 64
	authFailureSize    = 8
	authMaxIDs         = 30 // hash IDs, then DH group IDs, in a descriptor
)

// AuthMessage is a DH-HMAC-CHAP message. Byte slices of a parsed message
// alias the buffer it was parsed from.
type AuthMessage interface {
	// AuthID is the message identifier (AuthNegotiate ... AuthFailure1).
	AuthID() uint8
	// Transaction is T_ID.
	Transaction() uint16
	// Append appends the encoded message to b.
	Append(b []byte) []byte
}

// AuthNegotiateMsg starts a transaction (Figure 541). flashpath sends and
// reads one DH-HMAC-CHAP protocol descriptor.
type AuthNegotiateMsg struct {
	TID      uint16
	SCC      uint8   // secure channel concatenation: 0 none
	NAPD     uint8   // descriptors in the message (1 when encoding)
	Hashes   []uint8 // hash function IDs, in the host's order of preference
	DHGroups []uint8 // DH group IDs
}

// AuthChallengeMsg is the controller's challenge (Figure 544).
type AuthChallengeMsg struct {
	TID     uint16
	HashID  uint8
	DHGroup uint8
	Seq     uint32 // S1
	C       []byte // C1: HL bytes
	DHV     []byte // the controller's DH value, or empty for the NULL group
}

// AuthReplyMsg is the host's response (Figure 545). R and C are HL bytes
// each; C is C2 when CValid (bidirectional authentication), zeros otherwise.
type AuthReplyMsg struct {
	TID    uint16
	CValid bool
	Seq    uint32 // S2, 0 when not CValid
	R      []byte
	C      []byte
	DHV    []byte // the host's DH value
}

// AuthSuccess1Msg tells the host it authenticated (Figure 546); R is the
// controller's response to C2 when RValid.
type AuthSuccess1Msg struct {
	TID    uint16
	HL     uint8
	RValid bool
	R      []byte
}

// AuthSuccess2Msg tells the controller the host accepted its response (Figure 547).
type AuthSuccess2Msg struct {
	TID uint16
}

// AuthFailureMsg is Failure1 (controller to host) or Failure2 (host to
// controller) (Figures 548, 549).
type AuthFailureMsg struct {
	TID         uint16
	ID          uint8 // AuthFailure1 or AuthFailure2
	Reason      uint8 // RC
	Explanation uint8 // RCE: AuthFail*
}

func (m *AuthNegotiateMsg) AuthID() uint8 { return AuthNegotiate }
func (m *AuthChallengeMsg) AuthID() uint8 { return AuthChallenge }
func (m *AuthReplyMsg) AuthID() uint8     { return AuthReply }
func (m *AuthSuccess1Msg) AuthID() uint8  { return AuthSuccess1 }
func (m *AuthSuccess2Msg) AuthID() uint8  { return AuthSuccess2 }
func (m *AuthFailureMsg) AuthID() uint8   { return m.ID }

func (m *AuthNegotiateMsg) Transaction() uint16 { return m.TID }
func (m *AuthChallengeMsg) Transaction() uint16 { return m.TID }
func (m *AuthReplyMsg) Transaction() uint16     { return m.TID }
func (m *AuthSuccess1Msg) Transaction() uint16  { return m.TID }
func (m *AuthSuccess2Msg) Transaction() uint16  { return m.TID }
func (m *AuthFailureMsg) Transaction() uint16   { return m.TID }

// appendAuthHeader appends AUTH_TYPE, AUTH_ID, 2 reserved bytes and T_ID.
func appendAuthHeader(b []byte, typ, id uint8, tid uint16) []byte {
	b = append(b, typ, id, 0, 0)
	return le.AppendUint16(b, tid)
}

// Append encodes one DH-HMAC-CHAP descriptor; lists longer than 30 IDs are cut.
func (m *AuthNegotiateMsg) Append(b []byte) []byte {
	b = appendAuthHeader(b, AuthTypeCommon, AuthNegotiate, m.TID)
	b = append(b, m.SCC, 1)
	hashes, groups := m.Hashes[:min(len(m.Hashes), authMaxIDs)], m.DHGroups[:min(len(m.DHGroups), authMaxIDs)]
	d := len(b)
	b = append(b, make([]byte, authDescriptorSize)...)
	b[d] = AuthIDDHCHAP
	b[d+2], b[d+3] = uint8(len(hashes)), uint8(len(groups))
	copy(b[d+4:], hashes)
	copy(b[d+4+authMaxIDs:], groups)
	return b
}

func (m *AuthChallengeMsg) Append(b []byte) []byte {
	b = appendAuthHeader(b, AuthTypeDHCHAP, AuthChallenge, m.TID)
	b = append(b, uint8(len(m.C)), 0, m.HashID, m.DHGroup)
	b = le.AppendUint16(b, uint16(len(m.DHV)))
	b = le.AppendUint32(b, m.Seq)
	b = append(b, m.C...)
	return append(b, m.DHV...)
}

// Append encodes the reply; C is written as HL zero bytes when shorter.
func (m *AuthReplyMsg) Append(b []byte) []byte {
	hl := len(m.R)
	b = appendAuthHeader(b, AuthTypeDHCHAP, AuthReply, m.TID)
	var cvalid uint8
	if m.CValid {
		cvalid = 1
	}
	b = append(b, uint8(hl), 0, cvalid, 0)
	b = le.AppendUint16(b, uint16(len(m.DHV)))
	b = le.AppendUint32(b, m.Seq)
	b = append(b, m.R...)
	c := len(b)
	b = append(b, make([]byte, hl)...)
	copy(b[c:], m.C)
	return append(b, m.DHV...)
}

func (m *AuthSuccess1Msg) Append(b []byte) []byte {
	b = appendAuthHeader(b, AuthTypeDHCHAP, AuthSuccess1, m.TID)
	var rvalid uint8
	if m.RValid {
		rvalid = 1
	}
	b = append(b, m.HL, 0, rvalid, 0, 0, 0, 0, 0, 0, 0) // 7 reserved bytes
	if m.RValid {
		b = append(b, m.R...)
	}
	return b
}

func (m *AuthSuccess2Msg) Append(b []byte) []byte {
	b = appendAuthHeader(b, AuthTypeDHCHAP, AuthSuccess2, m.TID)
	return append(b, make([]byte, authHeaderSize-6)...)
}

func (m *AuthFailureMsg) Append(b []byte) []byte {
	b = appendAuthHeader(b, AuthTypeCommon, m.ID, m.TID)
	return append(b, m.Reason, m.Explanation)
}

// ErrAuthMessage wraps every error of ParseAuthMessage: the bytes are not a
// DH-HMAC-CHAP message (the controller answers with Failure1, explanation
// incorrect payload or incorrect message).
var ErrAuthMessage = errors.New("DH-HMAC-CHAP message")

func authErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrAuthMessage}, args...)...)
}

// ParseAuthMessage decodes the message at the start of b (bytes after it,
// such as the zero padding of an Authentication Receive, are ignored).
// Byte slices of the result alias b.
func ParseAuthMessage(b []byte) (AuthMessage, error) {
	if len(b) < authFailureSize {
		return nil, authErr("%d bytes, shorter than any message", len(b))
	}
	typ, id, tid := b[0], b[1], le.Uint16(b[4:])
	want := uint8(AuthTypeDHCHAP)
	switch id {
	case AuthNegotiate, AuthFailure1, AuthFailure2:
		want = AuthTypeCommon
	}
	if typ != want {
		return nil, authErr("AUTH_TYPE %#x for AUTH_ID %#x", typ, id)
	}
	switch id {
	case AuthNegotiate:
		return parseNegotiate(b, tid)
	case AuthFailure1, AuthFailure2:
		return &AuthFailureMsg{TID: tid, ID: id, Reason: b[6], Explanation: b[7]}, nil
	}
	if len(b) < authHeaderSize {
		return nil, authErr("AUTH_ID %#x: %d bytes, need %d", id, len(b), authHeaderSize)
	}
	hl := int(b[6])
	switch id {
	case AuthChallenge:
		dhvlen := int(le.Uint16(b[10:]))
		if need := authHeaderSize + hl + dhvlen; len(b) < need {
			return nil, authErr("challenge: HL %d and DHVLEN %d need %d bytes, have %d", hl, dhvlen, need, len(b))
		}
		c := b[authHeaderSize : authHeaderSize+hl]
		return &AuthChallengeMsg{TID: tid, HashID: b[8], DHGroup: b[9], Seq: le.Uint32(b[12:]),
			C: c, DHV: b[authHeaderSize+hl : authHeaderSize+hl+dhvlen]}, nil
	case AuthReply:
		dhvlen := int(le.Uint16(b[10:]))
		if need := authHeaderSize + 2*hl + dhvlen; len(b) < need {
			return nil, authErr("reply: HL %d and DHVLEN %d need %d bytes, have %d", hl, dhvlen, need, len(b))
		}
		if b[8] > 1 {
			return nil, authErr("reply: CVALID %#x", b[8])
		}
		r := b[authHeaderSize:]
		return &AuthReplyMsg{TID: tid, CValid: b[8] == 1, Seq: le.Uint32(b[12:]),
			R: r[:hl], C: r[hl : 2*hl], DHV: r[2*hl : 2*hl+dhvlen]}, nil
	case AuthSuccess1:
		m := &AuthSuccess1Msg{TID: tid, HL: b[6]}
		switch b[8] {
		case 0:
		case 1:
			if len(b) < authHeaderSize+hl {
				return nil, authErr("success1: HL %d needs %d bytes, have %d", hl, authHeaderSize+hl, len(b))
			}
			m.RValid, m.R = true, b[authHeaderSize:authHeaderSize+hl]
		default:
			return nil, authErr("success1: RVALID %#x", b[8])
		}
		return m, nil
	case AuthSuccess2:
		return &AuthSuccess2Msg{TID: tid}, nil
	}
	return nil, authErr("unknown AUTH_ID %#x", id)
}

func parseNegotiate(b []byte, tid uint16) (*AuthNegotiateMsg, error) {
	m := &AuthNegotiateMsg{TID: tid, SCC: b[6], NAPD: b[7]}
	if m.NAPD == 0 {
		return nil, authErr("negotiate: no protocol descriptor")
	}
	if need := authNegotiateSize + int(m.NAPD)*authDescriptorSize; len(b) < need {
		return nil, authErr("negotiate: NAPD %d needs %d bytes, have %d", m.NAPD, need, len(b))
	}
	for i := range int(m.NAPD) {
		d := b[authNegotiateSize+i*authDescriptorSize:][:authDescriptorSize]
		if d[0] != AuthIDDHCHAP {
			continue
		}
		halen, dhlen := int(d[2]), int(d[3])
		if halen > authMaxIDs || dhlen > authMaxIDs {
			return nil, authErr("negotiate: HALEN %d, DHLEN %d: at most %d each", halen, dhlen, authMaxIDs)
		}
		m.Hashes = d[4 : 4+halen]
		m.DHGroups = d[4+authMaxIDs : 4+authMaxIDs+dhlen]
		return m, nil
	}
	return nil, authErr("negotiate: no DH-HMAC-CHAP protocol descriptor among %d", m.NAPD)
}
