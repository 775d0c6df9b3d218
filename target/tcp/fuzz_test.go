package tcp

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/fuzzcorpus"
	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz/FuzzConn from fuzzSeeds")

// seedConn encodes PDUs as a host would, for fuzz seeds.
func seedConn(hdgst, ddgst bool) *tcppeer.Host {
	return &tcppeer.Host{Framing: tcppeer.Framing{HDigest: hdgst, DDigest: ddgst}}
}

func seedICReq(hdgst, ddgst bool) []byte {
	var dg uint8
	if hdgst {
		dg |= nvmeof.DigestHeader
	}
	if ddgst {
		dg |= nvmeof.DigestData
	}
	return tcppeer.ICReqBytes(nvmeof.ICReq{Digest: dg})
}

func seedConnect(c *tcppeer.Host, qid uint16, kato uint32, cntlid uint16) []byte {
	var sqe nvmeof.SQE
	sqe.SetConnect(qid, 31, kato)
	sqe.SetCID(1)
	sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, nvmeof.ConnectDataSize)
	data := make([]byte, nvmeof.ConnectDataSize)
	d := nvmeof.ConnectData{HostID: hostID, CntlID: cntlid, SubNQN: testNQN, HostNQN: hostNQN}
	d.Encode(data)
	return c.Capsule(sqe, data)
}

// fuzzSeeds are byte streams a host might send: valid sessions, and
// sessions that go wrong in the ways the protocol tests check.
func fuzzSeeds() map[string][]byte {
	seeds := map[string][]byte{}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, dg := range []struct {
		name         string
		hdgst, ddgst bool
	}{{"plain", false, false}, {"digests", true, true}} {
		c := seedConn(dg.hdgst, dg.ddgst)
		ic := seedICReq(dg.hdgst, dg.ddgst)
		conn := seedConnect(c, 0, 0, nvmeof.CntlIDDynamic)
		var enable nvmeof.SQE
		enable.SetPropertySet(nvmeof.PropCC, false, uint64(nvmeof.CCValue(true)))
		enable.SetCID(2)
		var ident nvmeof.SQE
		ident.SetIdentify(nvmeof.CNSController, 0)
		ident.SetCID(3)
		ident.SetFlags(nvmeof.FlagsSGL)
		ident.SGL().SetDataBlock(nvmeof.SGLTransport, 0, 4096)
		var aer nvmeof.SQE
		aer.SetOpcode(nvmeof.AdminAsyncEvent)
		aer.SetCID(4)
		admin := cat(ic, conn, c.Capsule(enable, nil), c.Capsule(ident, nil), c.Capsule(aer, nil))
		seeds[dg.name+"-admin"] = admin

		// An I/O queue of controller 1 (the first a fresh target creates) is
		// refused unless that controller exists; the fuzzer can still learn
		// the command formats from it.
		var w nvmeof.SQE
		w.SetOpcode(nvmeof.NVMWrite)
		w.SetNSID(1)
		w.SetRW(0, 1)
		w.SetCID(10)
		w.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, 512)
		var r nvmeof.SQE
		r.SetOpcode(nvmeof.NVMRead)
		r.SetNSID(1)
		r.SetRW(0, 8)
		r.SetCID(11)
		r.SetFlags(nvmeof.FlagsSGL)
		r.SGL().SetDataBlock(nvmeof.SGLTransport, 0, 4096)
		var big nvmeof.SQE
		big.SetOpcode(nvmeof.NVMWrite)
		big.SetNSID(1)
		big.SetRW(8, 8)
		big.SetCID(12)
		big.SetFlags(nvmeof.FlagsSGL)
		big.SGL().SetDataBlock(nvmeof.SGLTransport, 0, 4096)
		seeds[dg.name+"-io"] = cat(ic, seedConnect(c, 1, 0, 1),
			c.Capsule(w, make([]byte, 512)), c.Capsule(r, nil), c.Capsule(big, nil),
			c.H2CData(12, 0, 0, bytes.Repeat([]byte{7}, 4096)))

		// Write-direction admin command whose data comes by R2T/H2CData
		// (slot 0 before Connect), then a Connect through H2CData.
		var sc nvmeof.SQE
		sc.SetConnect(0, 31, 0)
		sc.SetCID(9)
		sc.SetFlags(nvmeof.FlagsSGL)
		sc.SGL().SetDataBlock(nvmeof.SGLTransport, 0, nvmeof.ConnectDataSize)
		cd := make([]byte, nvmeof.ConnectDataSize)
		(&nvmeof.ConnectData{HostID: hostID, CntlID: nvmeof.CntlIDDynamic, SubNQN: testNQN, HostNQN: hostNQN}).Encode(cd)
		seeds[dg.name+"-h2cdata"] = cat(ic, c.Capsule(sc, nil), c.H2CData(9, 0, 0, cd), c.Capsule(enable, nil))
		seeds[dg.name+"-h2cdata-unknown-tag"] = cat(ic, conn, c.H2CData(5, 999, 0, make([]byte, 64)))

		// Padding between header and data (PDO beyond the header).
		p := c.Capsule(w, make([]byte, 512))
		hl := nvmeof.CapsuleCmdHLen
		if dg.hdgst {
			hl += nvmeof.DigestSize
		}
		padded := make([]byte, 0, len(p)+180)
		padded = append(padded, p[:hl]...)
		padded = append(padded, make([]byte, 180)...)
		padded = append(padded, p[hl:]...)
		padded[3] = byte(hl + 180)
		h, _ := nvmeof.ParseHeader(padded)
		nvmeof.PutHeader(padded, nvmeof.Header{Type: h.Type, Flags: h.Flags, HLen: h.HLen, PDO: uint8(hl + 180), PLen: h.PLen + 180})
		seeds[dg.name+"-padded-capsule"] = cat(ic, conn, c.Capsule(enable, nil), padded)
	}
	c := seedConn(false, false)
	seeds["garbage"] = bytes.Repeat([]byte{0xDE, 0xAD, 0xBE, 0xEF}, 64)
	seeds["bad-pfv"] = tcppeer.ICReqBytes(nvmeof.ICReq{PFV: 1})
	unknown := make([]byte, 24)
	nvmeof.PutHeader(unknown, nvmeof.Header{Type: 0x0C, HLen: 24, PLen: 24})
	seeds["unknown-type"] = cat(seedICReq(false, false), unknown)
	term := make([]byte, 64)
	n := nvmeof.EncodeTermReq(term, nvmeof.PDUH2CTermReq, nvmeof.TermReq{FES: 1}, make([]byte, 40))
	seeds["h2c-termreq"] = cat(seedICReq(false, false), seedConnect(c, 0, 0, nvmeof.CntlIDDynamic), term[:n])
	seeds["empty"] = nil
	return seeds
}

// fuzzListener is a Listener that never listens: FuzzConn serves net.Pipe
// connections on it directly.
func fuzzListener(tb testing.TB) *Listener {
	tgt := target.New(target.Options{Logger: quietLogger(), MaxQueueDepth: 64, BufferMemory: 64 << 20})
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, AllowAnyHost: true})
	if err != nil {
		tb.Fatal(err)
	}
	be, err := backend.NewMem(1<<20, 512)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tgt.Close() })
	return &Listener{t: tgt, opts: Options{MaxH2CData: 32 << 10, ICTimeout: time.Second}, log: quietLogger()}
}

// serveBytes runs one connection over net.Pipe fed with in, draining what
// the target sends, and returns when the connection goroutine has.
func serveBytes(l *Listener, in []byte) {
	host, tgtSide := net.Pipe()
	c := newConn(l, tgtSide)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.serve()
	}()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(io.Discard, host)
	}()
	host.Write(in)
	host.Close()
	<-done
	<-drained
}

// FuzzConn feeds arbitrary bytes to a connection: the target must never
// panic and the connection goroutine must return once the host hangs up.
func FuzzConn(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(b)
	}
	l := fuzzListener(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		serveBytes(l, in)
	})
}

func TestWriteFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to regenerate testdata/fuzz/FuzzConn")
	}
	if err := fuzzcorpus.Write("FuzzConn", fuzzSeeds()); err != nil {
		t.Fatal(err)
	}
}

// TestListenerServesAfterFuzzInputs sends every seed (and the committed
// corpus) over real sockets, then checks that a fresh host connects and
// moves data.
func TestListenerServesAfterFuzzInputs(t *testing.T) {
	tt := startTarget(t, nil)
	tt.ss.AllowHost("nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000000")
	inputs := fuzzSeeds()
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzConn", "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if _, err := fmt.Sscanf(string(bytes.TrimPrefix(b, []byte("go test fuzz v1\n[]byte("))), "%q", &s); err == nil {
			inputs["file-"+filepath.Base(f)] = []byte(s)
		}
	}
	for name, in := range inputs {
		c := tcppeer.Dial(t, tt.addr())
		if _, err := c.NC.Write(in); err != nil {
			t.Logf("%s: write: %v", name, err)
		}
		c.NC.(*net.TCPConn).CloseWrite()
		// Drain until the target closes its side.
		io.Copy(io.Discard, c.NC)
		c.NC.Close()
	}
	tt.session(t, false, false).RoundTrip(0, 64<<10, 42)
	if err := tt.ln.Close(); err != nil {
		t.Fatal(err)
	}
	if n := tt.tgt.Controllers(); n != 0 {
		t.Errorf("Controllers() = %d after the listener closed", n)
	}
}
