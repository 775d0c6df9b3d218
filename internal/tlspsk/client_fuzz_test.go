package tlspsk

import (
	"bytes"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/fuzzcorpus"
)

// fuzzClientConfig is the client of FuzzClientHandshake: deterministic, so
// that a recorded server flight completes the handshake again.
func fuzzClientConfig(key Key, share uint16) *Config {
	return &Config{Keys: []Key{key}, Rand: fuzzRand(1), shareGroup: share}
}

// recordServerFlight runs our client against fuzzServerConfig's server and
// returns all the server wrote: its handshake flight, "hello", close_notify.
func recordServerFlight(t testing.TB, key Key, share uint16) []byte {
	cc, sc := net.Pipe()
	rec := &recConn{Conn: cc}
	c, s, cerr, serr := handshakePair(rec, sc, fuzzClientConfig(key, share), fuzzServerConfig())
	if cerr != nil || serr != nil {
		t.Fatalf("client: %v; server: %v", cerr, serr)
	}
	go func() { s.Write([]byte("hello")); s.Close(); sc.Close() }()
	io.Copy(io.Discard, c)
	c.Close()
	return rec.readBytes()
}

// clientSeeds are FuzzClientHandshake's seeds: the server flights that
// complete a handshake (data[0] = key | share<<1: fuzzKeys[0] or [1], a
// P-256 share or an X25519 one, which gets a HelloRetryRequest), their
// first halves, and a ServerHello that claims 16 MiB.
func clientSeeds(t testing.TB) map[string][]byte {
	seeds := map[string][]byte{
		"huge-server-hello": {0, recordHandshake, 3, 3, 0, 4, typeServerHello, 0xff, 0xff, 0xff},
	}
	for i, k := range []string{"aes128", "aes256"} {
		for j, g := range []string{"p256", "x25519-hrr"} {
			fl := recordServerFlight(t, fuzzKeys[i], []uint16{groupP256, groupX25519}[j])
			sel := byte(i | j<<1)
			seeds["full-"+k+"-"+g] = append([]byte{sel}, fl...)
			seeds["half-"+k+"-"+g] = append([]byte{sel}, fl[:len(fl)/2]...)
		}
	}
	return seeds
}

// FuzzClientHandshake feeds arbitrary bytes to Client as everything the
// server (an NVMe/TCP target, not trusted) sends: ServerHello,
// HelloRetryRequest, EncryptedExtensions, Finished, NewSessionTicket,
// records. Client returns an error or a working Conn, never panics.
// data[0] picks the key and first key share. The seeds are recorded here,
// and the full flights complete the handshake (checked below); they are in
// testdata/fuzz too (go test -run TestWriteClientFuzzSeeds -write-seeds).
func FuzzClientHandshake(f *testing.F) {
	seeds := clientSeeds(f)
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		seed := seeds[name]
		f.Add(seed)
		if strings.HasPrefix(name, "full-") {
			if got, err := clientReplay(seed); err != nil || string(got) != "hello" {
				f.Fatalf("%s: the recorded flight gives %q, %v", name, got, err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		c, err := clientConn(data)
		readToEnd(t, c, err)
	})
}

// clientConn runs Client on data as FuzzClientHandshake does.
func clientConn(data []byte) (*Conn, error) {
	g := uint16(groupP256)
	if data[0]&2 != 0 {
		g = groupX25519
	}
	sc := &scriptConn{r: bytes.NewReader(data[1:])}
	return Client(sc, fuzzClientConfig(fuzzKeys[int(data[0]&1)], g))
}

// clientReplay is what a client reads from a FuzzClientHandshake input.
func clientReplay(data []byte) ([]byte, error) {
	c, err := clientConn(data)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(c)
}

func TestWriteClientFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to regenerate testdata/fuzz/FuzzClientHandshake")
	}
	if err := fuzzcorpus.Write("FuzzClientHandshake", clientSeeds(t)); err != nil {
		t.Fatal(err)
	}
}
