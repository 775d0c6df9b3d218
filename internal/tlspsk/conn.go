package tlspsk

import (
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Record content types and sizes (RFC 8446 §5.1, §5.2).
const (
	recordChangeCipherSpec uint8 = 20
	recordAlert            uint8 = 21
	recordHandshake        uint8 = 22
	recordApplicationData  uint8 = 23

	recordHeaderLen = 5
	maxPlaintext    = 1 << 14            // TLSPlaintext.length, TLSInnerPlaintext content
	maxCiphertext   = maxPlaintext + 256 // TLSCiphertext.length

	// readBufSize holds a few full records, so one read from the socket
	// can bring several.
	readBufSize = 4 * (recordHeaderLen + maxCiphertext)
	// maxWriteBatch is the most plaintext sealed into one write to the
	// socket: a Write of up to 256 KiB is one system call.
	maxWriteBatch = 16 * maxPlaintext
	// rekeyAfter is how many records one key seals before this side
	// updates it: AES-GCM keys are good for 2^24.5 full records (§5.5).
	rekeyAfter = 1 << 24
	// maxUselessRecords bounds the records in a row that carry no
	// application data (tickets, key updates, empty records).
	maxUselessRecords = 64
	// closeNotifyTimeout bounds the close_notify that Close sends.
	closeNotifyTimeout = time.Second
)

// Conn is a net.Conn whose Read and Write go through TLS 1.3 records. One
// goroutine may Read while another Writes.
type Conn struct {
	conn     net.Conn
	isClient bool
	identity string
	suite    *suiteInfo
	hsDone   atomic.Bool // the handshake completed
	closed   atomic.Bool // Close was called

	in  inState
	out outState
}

var _ net.Conn = (*Conn)(nil)

// cipherState is one direction's traffic protection (§5.3, §7.3).
type cipherState struct {
	suite  *suiteInfo
	aead   cipher.AEAD // nil: records are plaintext (before the ServerHello)
	iv     [ivLen]byte
	nonce  [ivLen]byte // scratch for the per-record nonce
	seq    uint64
	secret []byte // the traffic secret, for KeyUpdate
}

// set installs the keys of a traffic secret and resets the sequence number.
func (cs *cipherState) set(s *suiteInfo, secret []byte) error {
	aead, iv, err := s.trafficKeys(secret)
	if err != nil {
		return err
	}
	cs.suite, cs.aead, cs.iv, cs.seq, cs.secret = s, aead, iv, 0, secret
	return nil
}

// update moves to the next application traffic secret (§7.2).
func (cs *cipherState) update() error {
	next, err := cs.suite.nextSecret(cs.secret)
	if err != nil {
		return err
	}
	return cs.set(cs.suite, next)
}

// nextNonce is the per-record nonce (§5.3): the 64-bit sequence number,
// big-endian, left-padded with zeros to the IV's length, XORed with the IV.
func (cs *cipherState) nextNonce() []byte {
	cs.nonce = cs.iv
	for i := range 8 {
		cs.nonce[ivLen-1-i] ^= byte(cs.seq >> (8 * i))
	}
	return cs.nonce[:]
}

// inState is the read side. All fields are guarded by mu.
type inState struct {
	mu sync.Mutex
	cipherState
	raw       []byte // raw[r:w]: bytes read from the socket, not yet a whole record
	r, w      int
	hsBuf     []byte // hsBuf[hsOff:]: handshake bytes not yet a whole message
	hsOff     int
	input     []byte // application data Read has not returned yet (points into raw)
	err       error  // sticky: every later Read returns it
	ccsOK     bool   // a change_cipher_spec record is dropped (§5: during the handshake)
	skipEarly int    // bytes of undecryptable records a server may still skip (§4.2.10)
}

// outState is the write side. All fields are guarded by mu.
type outState struct {
	mu sync.Mutex
	cipherState
	buf        []byte   // records being built, reused by every Write
	iov        [][]byte // the pieces of one record, for WriteBuffers
	err        error    // sticky: every later Write returns it
	version    uint16   // legacy_record_version of plaintext records (§5.1)
	rekeyAfter uint64
	alert      [2]byte // scratch for an alert record
}

func newConn(c net.Conn, isClient bool) *Conn {
	tc := &Conn{conn: c, isClient: isClient}
	tc.in.raw = make([]byte, readBufSize)
	tc.out.version = versionTLS12
	tc.out.rekeyAfter = rekeyAfter
	return tc
}

func (c *Conn) side() string {
	if c.isClient {
		return "client"
	}
	return "server"
}

// Identity returns the PSK identity the handshake used.
func (c *Conn) Identity() string { return c.identity }

// Suite returns the negotiated cipher suite.
func (c *Conn) Suite() uint16 { return c.suite.id }

func (c *Conn) LocalAddr() net.Addr                { return c.conn.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.conn.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.conn.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// fail sends alert a to the peer (best effort) and returns an error that
// says what failed.
// checkFinished verifies the peer's Finished (RFC 8446 §4.4.4): msg
// under the peer's handshake traffic secret over transcript, the last
// message of its record. side names this end's handshake in errors, peer
// the other end, and mismatch says what a wrong MAC means.
func (c *Conn) checkFinished(s *suiteInfo, msg, secret, transcript []byte, side, peer, mismatch string) error {
	switch {
	case msg[0] != typeFinished:
		return c.fail(alertUnexpectedMessage, nil, "%s: handshake message of type %d where the %s's Finished belongs", side, msg[0], peer)
	case len(msg) != handshakeHeaderLen+s.hashLen:
		return c.fail(alertDecodeError, nil, "%s: %s Finished of %d bytes (want %d)", side, peer, len(msg)-handshakeHeaderLen, s.hashLen)
	}
	want, err := s.finishedMAC(secret, s.hashOf(transcript))
	if err != nil {
		return c.fail(alertInternalError, err, "%s: %v", side, err)
	}
	if !hmac.Equal(msg[handshakeHeaderLen:], want) {
		return c.fail(alertDecryptError, ErrPSKMismatch, "%s: the %s's Finished does not verify: %s", side, peer, mismatch)
	}
	if c.hsPending() {
		return c.fail(alertUnexpectedMessage, nil, "%s: the %s's Finished is not the last message of its record (RFC 8446 §5.1)", side, peer)
	}
	return nil
}

func (c *Conn) fail(a alert, cause error, format string, args ...any) error {
	c.sendAlert(a)
	msg := fmt.Sprintf(format, args...)
	if !strings.HasPrefix(msg, c.side()) {
		msg = c.side() + ": " + msg
	}
	return &AlertError{Alert: uint8(a), Sent: true, Msg: msg, Err: cause}
}

// failParse turns a decoding error into its alert.
func (c *Conn) failParse(err error, what string) error {
	var pe *parseError
	if errors.As(err, &pe) {
		return c.fail(pe.alert, nil, "%s: %s", what, pe.msg)
	}
	return c.fail(alertDecodeError, nil, "%s: %v", what, err)
}

// sendAlert sends alert a. After the handshake it gives up rather than
// wait for a Write in progress.
func (c *Conn) sendAlert(a alert) {
	o := &c.out
	if c.hsDone.Load() {
		if !o.mu.TryLock() {
			return
		}
	} else {
		o.mu.Lock()
	}
	defer o.mu.Unlock()
	c.sendAlertLocked(a)
}

// sendAlertLocked sends alert a (caller holds out.mu) and ends the write
// side: after a fatal alert or a close_notify nothing more is sent.
func (c *Conn) sendAlertLocked(a alert) error {
	o := &c.out
	if o.err != nil {
		return o.err
	}
	o.alert = [2]byte{alertLevelFatal, byte(a)}
	if a == alertCloseNotify || a == alertUserCanceled {
		o.alert[0] = alertLevelWarning
	}
	var err error
	o.buf, err = o.appendRecord(o.buf[:0], recordAlert, o.alert[:])
	if err == nil {
		_, err = c.conn.Write(o.buf)
	}
	o.buf = o.buf[:0]
	if a == alertCloseNotify {
		o.err = errors.New("tlspsk: write after close_notify (Close was called)")
	} else {
		o.err = fmt.Errorf("tlspsk: write after a fatal error (sent alert %s)", a)
	}
	return err
}

// appendRecord appends to buf one record of content type typ carrying data
// (at most maxPlaintext bytes): a TLSPlaintext before there are keys, else
// a TLSCiphertext sealing TLSInnerPlaintext = data || typ, unpadded (§5.2).
func (o *outState) appendRecord(buf []byte, typ uint8, data []byte) ([]byte, error) {
	one := [1][]byte{data}
	return o.appendRecordv(buf, typ, one[:], len(data))
}

// appendRecordv is appendRecord of the concatenation of parts, size bytes
// in all.
func (o *outState) appendRecordv(buf []byte, typ uint8, parts [][]byte, size int) ([]byte, error) {
	if o.aead == nil {
		buf = append(buf, typ, byte(o.version>>8), byte(o.version), byte(size>>8), byte(size))
		for _, p := range parts {
			buf = append(buf, p...)
		}
		return buf, nil
	}
	if o.seq == math.MaxUint64 {
		return buf, errors.New("tlspsk: record sequence number exhausted: reconnect")
	}
	n := size + 1 + tagLen
	off := len(buf)
	buf = slices.Grow(buf, recordHeaderLen+n)[:off+recordHeaderLen+n]
	rec := buf[off:]
	rec[0], rec[1], rec[2], rec[3], rec[4] = recordApplicationData, 3, 3, byte(n>>8), byte(n)
	w := rec[recordHeaderLen : recordHeaderLen+size]
	for _, p := range parts {
		w = w[copy(w, p):]
	}
	rec[recordHeaderLen+size] = typ
	o.aead.Seal(rec[recordHeaderLen:recordHeaderLen], o.nextNonce(), rec[recordHeaderLen:recordHeaderLen+size+1], rec[:recordHeaderLen])
	o.seq++
	return buf, nil
}

// appendKeyUpdate appends a KeyUpdate (§4.6.3) sealed with the current key,
// then moves the write side to the next secret.
func (o *outState) appendKeyUpdate(buf []byte, requestPeer bool) ([]byte, error) {
	msg := [5]byte{typeKeyUpdate, 0, 0, 1, 0}
	if requestPeer {
		msg[4] = 1
	}
	buf, err := o.appendRecord(buf, recordHandshake, msg[:])
	if err != nil {
		return buf, err
	}
	return buf, o.update()
}

// queue appends records of type typ carrying data, split at maxPlaintext,
// to the flight being built (the handshake's).
func (c *Conn) queue(typ uint8, data []byte) error {
	o := &c.out
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		n := min(len(data), maxPlaintext)
		var err error
		if o.buf, err = o.appendRecord(o.buf, typ, data[:n]); err != nil {
			return err
		}
		data = data[n:]
		if len(data) == 0 {
			return nil
		}
	}
}

// flush writes the flight built by queue in one write.
func (c *Conn) flush() error {
	o := &c.out
	o.mu.Lock()
	defer o.mu.Unlock()
	_, err := c.conn.Write(o.buf)
	o.buf = o.buf[:0]
	return err
}

// Write seals b into records of at most 16 KiB of plaintext and writes
// them, up to 256 KiB of them with one write to the socket.
func (c *Conn) Write(b []byte) (int, error) {
	one := [1][]byte{b}
	n, err := c.WriteBuffers(one[:])
	return int(n), err
}

// WriteBuffers writes the concatenation of parts as Write writes one
// buffer: records filled across the parts (a PDU header, its data and the
// next response share a record), up to 256 KiB of them per write to the
// socket. Writing each part on its own would make a record and a system
// call of every part.
func (c *Conn) WriteBuffers(parts [][]byte) (int64, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	o := &c.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, o.err
	}
	var written int64
	p, off := 0, 0 // the next byte to seal: parts[p][off]
	for p < len(parts) {
		buf := o.buf[:0]
		batch := 0
		var err error
		for p < len(parts) && batch < maxWriteBatch {
			iov, size := o.iov[:0], 0
			for p < len(parts) && size < maxPlaintext {
				take := min(len(parts[p])-off, maxPlaintext-size)
				if take > 0 {
					iov = append(iov, parts[p][off:off+take])
					size += take
				}
				if off += take; off == len(parts[p]) {
					p, off = p+1, 0
				}
			}
			if size == 0 {
				break // only empty parts were left
			}
			if o.seq >= o.rekeyAfter {
				buf, err = o.appendKeyUpdate(buf, false)
			}
			if err == nil {
				buf, err = o.appendRecordv(buf, recordApplicationData, iov, size)
			}
			clear(iov) // keep no reference to the caller's memory
			o.iov = iov[:0]
			if err != nil {
				break
			}
			batch += size
		}
		o.buf = buf
		if err != nil {
			o.err = err
			return written, err
		}
		if len(buf) > 0 {
			if _, err := c.conn.Write(buf); err != nil {
				// Part of a record may have gone: the stream is broken.
				o.err = fmt.Errorf("tlspsk: an earlier write failed: %w", err)
				return written, err
			}
		}
		written += int64(batch)
	}
	return written, nil
}

// sendKeyUpdate sends a KeyUpdate and moves to the next write secret; with
// requestPeer the peer answers with its own.
func (c *Conn) sendKeyUpdate(requestPeer bool) error {
	o := &c.out
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	buf, err := o.appendKeyUpdate(o.buf[:0], requestPeer)
	o.buf = buf[:0]
	if err != nil {
		o.err = err
		return err
	}
	if _, err := c.conn.Write(buf); err != nil {
		o.err = fmt.Errorf("tlspsk: an earlier write failed: %w", err)
		return err
	}
	return nil
}

// Read reads application data. A close_notify from the peer, or the end of
// the stream at a record boundary, is io.EOF.
func (c *Conn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	in := &c.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(b) == 0 {
		return 0, nil
	}
	for useless := 0; len(in.input) == 0; useless++ {
		if in.err != nil {
			return 0, in.err
		}
		if useless > maxUselessRecords {
			in.err = c.fail(alertUnexpectedMessage, nil, "read: %d records in a row without application data", useless)
			return 0, in.err
		}
		err := c.readRecord()
		if err == nil {
			err = c.handlePostHandshake()
		}
		if err != nil {
			if !isTimeout(err) {
				in.err = err
			}
			return 0, err
		}
	}
	n := copy(b, in.input)
	in.input = in.input[n:]
	return n, nil
}

// Close sends a close_notify (best effort, for at most a second, and not
// while a Write is in progress) and closes the connection.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	var alertErr error
	if c.hsDone.Load() && c.out.mu.TryLock() {
		if c.out.err == nil {
			c.conn.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
			alertErr = c.sendAlertLocked(alertCloseNotify)
		}
		c.out.mu.Unlock()
	}
	if err := c.conn.Close(); err != nil {
		return err
	}
	if alertErr != nil {
		return fmt.Errorf("tlspsk: send close_notify (the connection is closed anyway): %w", alertErr)
	}
	return nil
}

// fill reads from the socket until raw holds n bytes past r, moving what it
// holds to the front when the end of raw is too near.
func (in *inState) fill(conn net.Conn, n int) error {
	for stalls := 0; in.w-in.r < n; {
		if in.r+n > len(in.raw) {
			in.w = copy(in.raw, in.raw[in.r:in.w])
			in.r = 0
		}
		m, err := conn.Read(in.raw[in.w:])
		in.w += m
		switch {
		case in.w-in.r >= n:
			return nil
		case err == io.EOF && in.w > in.r:
			return io.ErrUnexpectedEOF
		case err != nil:
			return err
		case m == 0:
			if stalls++; stalls > 100 {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// readRecord reads one record and acts on it (caller holds in.mu):
// handshake bytes are added to the reassembly buffer, application data
// becomes in.input, a change_cipher_spec record is dropped while allowed,
// an alert becomes an error (io.EOF for close_notify). Errors from the
// socket come back as they are.
func (c *Conn) readRecord() error {
	in := &c.in
	if err := in.fill(c.conn, recordHeaderLen); err != nil {
		if err == io.ErrUnexpectedEOF {
			return c.fail(alertDecodeError, err, "read: the stream ended inside a record header")
		}
		return err
	}
	hdr := in.raw[in.r : in.r+recordHeaderLen]
	typ := hdr[0]
	n := int(hdr[3])<<8 | int(hdr[4])
	// Checked before waiting for the body: a peer that is not speaking
	// TLS (a plain NVMe/TCP ICReq starts 0x00 0x00 0x80) is told at once.
	if typ < recordChangeCipherSpec || typ > recordApplicationData || hdr[1] != 3 {
		return c.fail(alertUnexpectedMessage, nil, "read: record type %d, version %#02x%02x: the peer is not speaking TLS", typ, hdr[1], hdr[2])
	}
	if n > maxCiphertext {
		return c.fail(alertRecordOverflow, nil, "read: record of %d bytes, over the %d of RFC 8446 §5.2 (is the peer speaking TLS?)", n, maxCiphertext)
	}
	if err := in.fill(c.conn, recordHeaderLen+n); err != nil {
		if err == io.ErrUnexpectedEOF {
			return c.fail(alertDecodeError, err, "read: the stream ended inside a record")
		}
		return err
	}
	hdr = in.raw[in.r : in.r+recordHeaderLen]
	payload := in.raw[in.r+recordHeaderLen : in.r+recordHeaderLen+n]
	in.r += recordHeaderLen + n

	var data []byte
	switch {
	case typ == recordChangeCipherSpec:
		// §5: dropped if it is exactly one byte 0x01, between the first
		// ClientHello and the peer's Finished.
		if !in.ccsOK {
			return c.fail(alertUnexpectedMessage, nil, "read: change_cipher_spec record outside the handshake")
		}
		if n != 1 || payload[0] != 1 {
			return c.fail(alertUnexpectedMessage, nil, "read: change_cipher_spec record is not the single byte 0x01")
		}
		return nil
	case in.aead == nil, typ == recordAlert && !c.hsDone.Load() && n == 2:
		// A plaintext record: before the keys, or an alert from a peer that
		// failed before it had them.
		if n > maxPlaintext {
			return c.fail(alertRecordOverflow, nil, "read: plaintext record of %d bytes, over %d", n, maxPlaintext)
		}
		if typ != recordHandshake && typ != recordAlert {
			return c.fail(alertUnexpectedMessage, nil, "read: unprotected record of type %d", typ)
		}
		data = payload
	default:
		if typ != recordApplicationData {
			return c.fail(alertUnexpectedMessage, nil, "read: protected record of outer type %d (want 23)", typ)
		}
		pt, err := in.aead.Open(payload[:0], in.nextNonce(), payload, hdr)
		if err != nil {
			if in.skipEarly >= n {
				in.skipEarly -= n // early data this server declined (§4.2.10)
				return nil
			}
			return c.fail(alertBadRecordMAC, nil, "read: record %d does not decrypt: the peer's keys differ from ours or the stream was damaged", in.seq)
		}
		in.seq++
		in.skipEarly = 0
		if len(pt) > maxPlaintext+1 {
			return c.fail(alertRecordOverflow, nil, "read: inner plaintext of %d bytes, over %d", len(pt), maxPlaintext+1)
		}
		// TLSInnerPlaintext (§5.2): content || type || zeros.
		i := len(pt) - 1
		for i >= 0 && pt[i] == 0 {
			i--
		}
		if i < 0 {
			return c.fail(alertUnexpectedMessage, nil, "read: protected record with no content type (all zeros)")
		}
		typ, data = pt[i], pt[:i]
		if typ != recordHandshake && typ != recordAlert && typ != recordApplicationData {
			return c.fail(alertUnexpectedMessage, nil, "read: protected record of content type %d", typ)
		}
	}

	switch typ {
	case recordAlert:
		// §5.1: an alert record holds exactly one alert.
		if len(data) != 2 {
			return c.fail(alertDecodeError, nil, "read: alert record of %d bytes (want 2)", len(data))
		}
		switch a := alert(data[1]); a {
		case alertCloseNotify:
			return io.EOF
		case alertUserCanceled:
			return nil // a close_notify follows (§6.1)
		default:
			return &AlertError{Alert: uint8(a), Msg: c.side() + ": the peer ended the connection"}
		}
	case recordHandshake:
		if len(data) == 0 {
			return c.fail(alertUnexpectedMessage, nil, "read: empty handshake record (RFC 8446 §5.1 forbids them)")
		}
		if in.hsOff > 0 {
			in.hsBuf = in.hsBuf[:copy(in.hsBuf, in.hsBuf[in.hsOff:])]
			in.hsOff = 0
		}
		in.hsBuf = append(in.hsBuf, data...)
	case recordApplicationData:
		if !c.hsDone.Load() {
			return c.fail(alertUnexpectedMessage, nil, "read: application data before the handshake completed")
		}
		in.input = data
	}
	return nil
}

// nextHandshakeMsg returns the next whole handshake message (header
// included) in the reassembly buffer, or nil if there is none yet. It is
// valid until the next readRecord.
func (c *Conn) nextHandshakeMsg() ([]byte, error) {
	in := &c.in
	hs := in.hsBuf[in.hsOff:]
	if len(hs) < handshakeHeaderLen {
		return nil, nil
	}
	n := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
	if n > maxHandshakeLen {
		return nil, c.fail(alertDecodeError, nil, "read: handshake message of type %d and %d bytes, over the %d this side accepts", hs[0], n, maxHandshakeLen)
	}
	if len(hs) < handshakeHeaderLen+n {
		return nil, nil
	}
	msg := hs[: handshakeHeaderLen+n : handshakeHeaderLen+n]
	in.hsOff += handshakeHeaderLen + n
	if in.hsOff == len(in.hsBuf) {
		in.hsBuf, in.hsOff = in.hsBuf[:0], 0
	}
	return msg, nil
}

// hsPending says whether handshake bytes wait in the reassembly buffer: at
// a key change there must be none (§5.1).
func (c *Conn) hsPending() bool { return len(c.in.hsBuf) > c.in.hsOff }

// handlePostHandshake acts on the whole handshake messages read after the
// handshake (§4.6): NewSessionTicket (dropped), KeyUpdate.
func (c *Conn) handlePostHandshake() error {
	for {
		msg, err := c.nextHandshakeMsg()
		if err != nil || msg == nil {
			return err
		}
		switch msg[0] {
		case typeNewSessionTicket:
			if !c.isClient {
				return c.fail(alertUnexpectedMessage, nil, "read: NewSessionTicket from a client")
			}
			if err := parseNewSessionTicket(msg); err != nil {
				return c.failParse(err, "read")
			}
		case typeKeyUpdate:
			// §4.6.3: enum { update_not_requested(0), update_requested(1) }.
			if len(msg) != handshakeHeaderLen+1 {
				return c.fail(alertDecodeError, nil, "read: KeyUpdate of %d bytes", len(msg)-handshakeHeaderLen)
			}
			if msg[4] > 1 {
				return c.fail(alertIllegalParameter, nil, "read: KeyUpdate request_update %d", msg[4])
			}
			if c.hsPending() {
				return c.fail(alertUnexpectedMessage, nil, "read: KeyUpdate not at the end of its record (RFC 8446 §5.1)")
			}
			if err := c.in.update(); err != nil {
				return c.fail(alertInternalError, err, "read: derive the next traffic secret: %v", err)
			}
			if msg[4] == 1 {
				if err := c.sendKeyUpdate(false); err != nil {
					return err
				}
			}
		default:
			return c.fail(alertUnexpectedMessage, nil, "read: handshake message of type %d after the handshake", msg[0])
		}
	}
}

// readHandshake returns the next handshake message of the handshake (a
// copy, header included); what names it in errors.
func (c *Conn) readHandshake(what string) ([]byte, error) {
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	for {
		msg, err := c.nextHandshakeMsg()
		if err != nil {
			return nil, err
		}
		if msg != nil {
			return bytes.Clone(msg), nil
		}
		if err := c.readRecord(); err != nil {
			return nil, c.handshakeReadErr(err, what)
		}
	}
}

// handshakeReadErr says what a failed handshake read was waiting for.
func (c *Conn) handshakeReadErr(err error, what string) error {
	var ae *AlertError
	switch {
	case errors.As(err, &ae) && ae.Sent:
		return err
	case errors.As(err, &ae):
		return &AlertError{Alert: ae.Alert, Msg: fmt.Sprintf("%s handshake: the peer failed the handshake while this side waited for %s", c.side(), what)}
	case err == io.EOF:
		return fmt.Errorf("tlspsk: %s handshake: read %s: the peer closed the connection: is it speaking TLS 1.3, with a PSK this side offers? (%w)", c.side(), what, err)
	}
	return fmt.Errorf("tlspsk: %s handshake: read %s: %w", c.side(), what, err)
}
