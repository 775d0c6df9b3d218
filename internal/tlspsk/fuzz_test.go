package tlspsk

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/fuzzcorpus"
)

var writeSeeds = flag.Bool("write-seeds", false, "regenerate testdata/fuzz/FuzzServerHandshake, FuzzRecords and FuzzClientHandshake")

// fuzzRand is the deterministic randomness of the fuzz targets and their
// seeds: a server with it answers a recorded client flight exactly as it
// did when the flight was recorded, so a seed completes the handshake.
func fuzzRand(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return rand.NewChaCha8(s)
}

var fuzzKeys = []Key{testKey(TLS_AES_128_GCM_SHA256, "fuzz"), testKey(TLS_AES_256_GCM_SHA384, "fuzz384")}

func init() { fuzzKeys[1].Identity = "fuzz 384" }

// fuzzServerConfig takes secp256r1 only, so that a client's X25519 share
// gets a HelloRetryRequest.
func fuzzServerConfig() *Config {
	return &Config{Lookup: lookupOf(fuzzKeys...), Rand: fuzzRand(2), serverGroups: []uint16{groupP256}}
}

// FuzzServerHandshake feeds arbitrary bytes to Server as everything the
// client sends. Server returns an error or a working Conn, never panics;
// its errors say they are ours. The seeds (testdata/fuzz) are recorded
// client flights that complete the handshake, with and without a
// HelloRetryRequest, and pieces of them.
func FuzzServerHandshake(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		sc := &scriptConn{r: bytes.NewReader(data)}
		c, err := Server(sc, fuzzServerConfig())
		readToEnd(t, c, err)
	})
}

// readToEnd checks a fuzzed handshake's outcome: an error the package
// names, or a connection whose reads of the finite input end in an error.
func readToEnd(t *testing.T, c *Conn, err error) {
	t.Helper()
	if err != nil {
		if !strings.HasPrefix(err.Error(), "tlspsk: ") {
			t.Fatalf("error without the package's prefix: %v", err)
		}
		return
	}
	buf := make([]byte, 1000)
	for range 1000 {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
	t.Fatal("1000 reads of a finite input without an error")
}

// FuzzRecords feeds arbitrary records to a Conn after its handshake: with
// data[0] even, data[1:] is the raw stream; with it odd, data[1:] is a list
// of (outer type, uint16 length, TLSInnerPlaintext) that the harness seals
// with the peer's key, so the fuzzer reaches what is inside records. Read
// returns an error or data, never panics, and the data it returns begins
// with the content of the leading well-formed application data records.
func FuzzRecords(f *testing.F) {
	secret := bytes.Repeat([]byte{7}, 32)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		stream, want := data[1:], []byte(nil)
		if data[0]&1 == 1 {
			stream, want = sealChunks(secret, data[1:])
		}
		sc := &scriptConn{r: bytes.NewReader(stream)}
		c := newConn(sc, true)
		c.suite, c.identity = suiteAES128, "fuzz"
		if err := c.in.set(suiteAES128, secret); err != nil {
			t.Fatal(err)
		}
		if err := c.out.set(suiteAES128, secret); err != nil {
			t.Fatal(err)
		}
		c.hsDone.Store(true)
		var got []byte
		buf := make([]byte, 4096)
		var err error
		for range 10000 {
			var n int
			n, err = c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if err == nil {
			t.Fatal("10000 reads of a finite input without an error")
		}
		var ae *AlertError
		if err != io.EOF && !errors.As(err, &ae) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Read error %T %v: neither io.EOF nor an alert", err, err)
		}
		if !bytes.HasPrefix(got, want) {
			t.Fatalf("Read returned %q, which does not begin with the records' data %q", got, want)
		}
	})
}

// sealChunks seals each (type, length, inner plaintext) chunk of in as a
// record under secret, following KeyUpdates it seals. want is the content
// of the leading chunks that are well-formed application data records.
func sealChunks(secret, in []byte) (stream, want []byte) {
	var o outState
	o.set(suiteAES128, secret)
	r := reader(in)
	leading := true
	for !r.empty() {
		var typ uint8
		var inner []byte
		if !r.u8(&typ) || !r.vec16(&inner) || len(inner) > maxPlaintext+1 {
			break
		}
		n := len(inner) + tagLen
		hdr := []byte{typ, 3, 3, byte(n >> 8), byte(n)}
		stream = append(stream, hdr...)
		stream = o.aead.Seal(stream, o.nextNonce(), inner, hdr)
		o.seq++
		content := bytes.TrimRight(inner, "\x00")
		if leading && typ == recordApplicationData && len(content) > 0 && content[len(content)-1] == recordApplicationData {
			want = append(want, content[:len(content)-1]...)
		} else {
			leading = false
		}
		if typ == recordApplicationData && len(content) == 6 && bytes.Equal(content[:4], []byte{typeKeyUpdate, 0, 0, 1}) && content[5] == recordHandshake {
			o.update()
		}
	}
	return stream, want
}

// chunk is one FuzzRecords chunk: outer type, length, inner plaintext.
func chunk(typ uint8, content []byte, innerType uint8, pad int) []byte {
	inner := append(append(bytes.Clone(content), innerType), make([]byte, pad)...)
	return append([]byte{typ, byte(len(inner) >> 8), byte(len(inner))}, inner...)
}

// recordFlight runs our client against a server with fuzzServerConfig's
// randomness and returns all the client wrote: its handshake flights, then
// "hello" and a close_notify.
func recordFlight(t *testing.T, key Key, share uint16) []byte {
	cc, sc := net.Pipe()
	rec := &recConn{Conn: cc}
	c, s, cerr, serr := handshakePair(rec, sc, &Config{Keys: []Key{key}, Rand: fuzzRand(1), shareGroup: share}, fuzzServerConfig())
	if cerr != nil || serr != nil {
		t.Fatalf("client: %v; server: %v", cerr, serr)
	}
	go io.Copy(io.Discard, s)
	c.Write([]byte("hello"))
	c.Close()
	s.Close()
	return rec.bytes()
}

func serverSeeds(t *testing.T) map[string][]byte {
	full := recordFlight(t, fuzzKeys[0], groupP256)
	hrr := recordFlight(t, fuzzKeys[0], groupX25519)
	full384 := recordFlight(t, fuzzKeys[1], groupP256)
	// The first record alone: the ClientHello.
	n := recordHeaderLen + int(full[3])<<8 | int(full[4])
	hello := full[:n]
	// The ClientHello split over two records (reassembly).
	body := hello[recordHeaderLen:]
	split := append([]byte{recordHandshake, 3, 1, 0, 10}, body[:10]...)
	split = append(split, recordHandshake, 3, 1, byte((len(body)-10)>>8), byte(len(body)-10))
	split = append(split, body[10:]...)
	return map[string][]byte{
		"full-p256":          full,
		"full-hrr":           hrr,
		"full-aes256":        full384,
		"hello-only":         hello,
		"hello-split":        split,
		"hello-truncated":    hello[:len(hello)/2],
		"ccs-before-hello":   append([]byte{recordChangeCipherSpec, 3, 3, 0, 1, 1}, hello...),
		"not-tls":            []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"oversized-record":   {recordHandshake, 3, 3, 0xff, 0xff},
		"empty-handshake":    {recordHandshake, 3, 3, 0, 0},
		"huge-message":       {recordHandshake, 3, 3, 0, 4, typeClientHello, 0xff, 0xff, 0xff},
		"alert-before-hello": {recordAlert, 3, 3, 0, 2, 2, 40},
	}
}

func recordSeeds() map[string][]byte {
	sealed := func(chunks ...[]byte) []byte { return append([]byte{1}, bytes.Join(chunks, nil)...) }
	ku := []byte{typeKeyUpdate, 0, 0, 1, 1}
	nst := []byte{typeNewSessionTicket, 0, 0, 14, 0, 0, 0, 60, 1, 2, 3, 4, 0, 0, 1, 0xaa, 0, 0}
	return map[string][]byte{
		"data":             sealed(chunk(recordApplicationData, []byte("hello"), recordApplicationData, 0)),
		"padded":           sealed(chunk(recordApplicationData, []byte("hello"), recordApplicationData, 100)),
		"empty-data":       sealed(chunk(recordApplicationData, nil, recordApplicationData, 0), chunk(recordApplicationData, []byte("x"), recordApplicationData, 0)),
		"key-update":       sealed(chunk(recordApplicationData, ku, recordHandshake, 0), chunk(recordApplicationData, []byte("after"), recordApplicationData, 0)),
		"ticket":           sealed(chunk(recordApplicationData, nst, recordHandshake, 0), chunk(recordApplicationData, []byte("after"), recordApplicationData, 0)),
		"split-handshake":  sealed(chunk(recordApplicationData, ku[:3], recordHandshake, 0), chunk(recordApplicationData, ku[3:], recordHandshake, 0)),
		"close-notify":     sealed(chunk(recordApplicationData, []byte("bye"), recordApplicationData, 0), chunk(recordApplicationData, []byte{1, 0}, recordAlert, 0)),
		"fatal-alert":      sealed(chunk(recordApplicationData, []byte{2, 80}, recordAlert, 0)),
		"all-zeros":        sealed(chunk(recordApplicationData, nil, 0, 5)),
		"wrong-outer-type": sealed(chunk(recordHandshake, []byte("x"), recordApplicationData, 0)),
		"raw-ccs":          {0, recordChangeCipherSpec, 3, 3, 0, 1, 1},
		"raw-garbage":      {0, recordApplicationData, 3, 3, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20},
		"raw-oversized":    {0, recordApplicationData, 3, 3, 0x48, 0x01},
	}
}

func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to regenerate testdata/fuzz/FuzzServerHandshake and FuzzRecords")
	}
	if err := fuzzcorpus.Write("FuzzServerHandshake", serverSeeds(t)); err != nil {
		t.Fatal(err)
	}
	if err := fuzzcorpus.Write("FuzzRecords", recordSeeds()); err != nil {
		t.Fatal(err)
	}
}

// The recorded flights complete the handshake when replayed to a server
// with the same randomness (so the fuzzer starts from working inputs), and
// a flight from a client with another key does not.
func TestFuzzSeedsReplay(t *testing.T) {
	for _, name := range []string{"full-p256", "full-hrr", "full-aes256"} {
		flight := serverSeeds(t)[name]
		sc := &scriptConn{r: bytes.NewReader(flight)}
		c, err := Server(sc, fuzzServerConfig())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "hello" {
			t.Fatalf("%s: read %q, %v", name, got, err)
		}
	}
}
