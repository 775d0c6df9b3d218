package tlspsk

import (
	"io"
	"net"
	"testing"
	"time"
)

// discardConn swallows writes and serves reads from a fixed stream, over
// and over.
type discardConn struct {
	stream []byte
	off    int
}

func (c *discardConn) Write(b []byte) (int, error) { return len(b), nil }
func (c *discardConn) Read(b []byte) (int, error) {
	if c.off == len(c.stream) {
		c.off = 0
	}
	n := copy(b, c.stream[c.off:])
	c.off += n
	return n, nil
}
func (c *discardConn) Close() error                     { return nil }
func (c *discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *discardConn) SetDeadline(time.Time) error      { return nil }
func (c *discardConn) SetReadDeadline(time.Time) error  { return nil }
func (c *discardConn) SetWriteDeadline(time.Time) error { return nil }

// keyedConn is a Conn past its handshake over dc, both directions under
// one AES-128-GCM secret.
func keyedConn(t testing.TB, dc net.Conn) *Conn {
	c := newConn(dc, true)
	secret := make([]byte, 32)
	c.suite = suiteAES128
	if err := c.in.set(suiteAES128, secret); err != nil {
		t.Fatal(err)
	}
	if err := c.out.set(suiteAES128, secret); err != nil {
		t.Fatal(err)
	}
	c.hsDone.Store(true)
	return c
}

// A Write reuses its record buffer and a Read opens records in place: no
// allocation in the steady state.
func TestNoAllocs(t *testing.T) {
	w := keyedConn(t, &discardConn{})
	data := make([]byte, 128<<10)
	w.Write(data) // grows the record buffer once
	if n := testing.AllocsPerRun(100, func() { w.Write(data) }); n != 0 {
		t.Errorf("%v allocations per 128 KiB Write", n)
	}

	// A stream of records sealed under the key, read back in a loop; the
	// sequence numbers must line up, so the stream is one Write's worth
	// and each run reads all of it after resetting the read side.
	var sealer outState
	sealer.set(suiteAES128, make([]byte, 32))
	stream, _ := sealer.appendRecord(nil, recordApplicationData, data[:maxPlaintext])
	stream, _ = sealer.appendRecord(stream, recordApplicationData, data[:1000])
	r := keyedConn(t, &discardConn{stream: stream})
	buf := make([]byte, 64<<10)
	if n := testing.AllocsPerRun(100, func() {
		r.in.seq = 0
		if _, err := io.ReadFull(r, buf[:maxPlaintext+1000]); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per Read of two records", n)
	}
}

// BenchmarkWriteRead: 128 KiB Writes on one side, Reads on the other, over
// net.Pipe and loopback TCP; MB/s is the application data.
func BenchmarkWriteRead(b *testing.B) {
	for _, suite := range []uint16{TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384} {
		for _, transport := range []string{"pipe", "tcp"} {
			b.Run(suiteByID(suite).name+"/"+transport, func(b *testing.B) {
				var cc, sc net.Conn
				if transport == "pipe" {
					cc, sc = net.Pipe()
				} else {
					cc, sc = tcpPipe(b)
				}
				key := testKey(suite, "bench")
				c, s := mustPair(b, cc, sc, &Config{Keys: []Key{key}}, &Config{Lookup: lookupOf(key)})
				const size = 128 << 10
				data := make([]byte, size)
				done := make(chan error, 1)
				b.SetBytes(size)
				b.ReportAllocs()
				b.ResetTimer()
				go func() {
					buf := make([]byte, 256<<10)
					total := int64(b.N) * size
					for got := int64(0); got < total; {
						n, err := s.Read(buf)
						if err != nil {
							done <- err
							return
						}
						got += int64(n)
					}
					done <- nil
				}()
				for range b.N {
					if _, err := c.Write(data); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
