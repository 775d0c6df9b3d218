package tcp

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

func setFeatureSQE(cid uint16, fid uint8, dlen uint32) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetFeatures(fid, 0)
	sqe.SetCID(cid)
	sqe.SetFlags(nvmeof.FlagsSGL)
	sqe.SGL().SetDataBlock(nvmeof.SGLTransport, 0, dlen)
	return sqe
}

// TestProtocolErrors sends malformed PDUs on raw connections: each gets a
// C2HTermReq with the right status and is closed, while a healthy host
// connection keeps working.
func TestProtocolErrors(t *testing.T) {
	tt := startTarget(t, nil)
	healthy := namespace(t, tt.connect(t, initiator.Options{}))
	roundTrip(t, healthy, 0, 8192, 1)

	// connected returns a raw connection whose admin queue is connected.
	connected := func(t *testing.T, hdgst, ddgst bool) *rawConn {
		c := dialRaw(t, tt.addr())
		c.init(hdgst, ddgst)
		if _, st := c.connectAdmin(testNQN, hostNQN, 0); !st.OK() {
			t.Fatalf("connect: %v", st)
		}
		return c
	}
	for i, tc := range []struct {
		name string
		fes  uint16
		run  func(t *testing.T) *rawConn
	}{
		{"garbage instead of ICReq", nvmeof.FESSequenceError, func(t *testing.T) *rawConn {
			c := dialRaw(t, tt.addr())
			c.write(bytes.Repeat([]byte{0xDE, 0xAD, 0xBE, 0xEF}, 64))
			return c
		}},
		{"ICReq with PFV 1", nvmeof.FESUnsupportedParam, func(t *testing.T) *rawConn {
			c := dialRaw(t, tt.addr())
			c.write(icreqBytes(nvmeof.ICReq{PFV: 1}))
			return c
		}},
		{"ICReq with HPDA 32", nvmeof.FESUnsupportedParam, func(t *testing.T) *rawConn {
			c := dialRaw(t, tt.addr())
			c.write(icreqBytes(nvmeof.ICReq{HPDA: 32}))
			return c
		}},
		{"ICReq with a bad PLEN", nvmeof.FESInvalidHeader, func(t *testing.T) *rawConn {
			c := dialRaw(t, tt.addr())
			b := icreqBytes(nvmeof.ICReq{})
			b[4] = 200
			c.write(b)
			return c
		}},
		{"unknown PDU type", nvmeof.FESInvalidHeader, func(t *testing.T) *rawConn {
			c := dialRaw(t, tt.addr())
			c.init(false, false)
			b := make([]byte, 24)
			nvmeof.PutHeader(b, nvmeof.Header{Type: 0x0C, HLen: 24, PLen: 24})
			c.write(b)
			return c
		}},
		{"controller PDU type from the host", nvmeof.FESInvalidHeader, func(t *testing.T) *rawConn {
			c := dialRaw(t, tt.addr())
			c.init(false, false)
			b := make([]byte, 24)
			nvmeof.PutHeader(b, nvmeof.Header{Type: nvmeof.PDUR2T, HLen: 24, PLen: 24})
			c.write(b)
			return c
		}},
		{"second ICReq", nvmeof.FESInvalidHeader, func(t *testing.T) *rawConn {
			c := dialRaw(t, tt.addr())
			c.init(false, false)
			c.write(icreqBytes(nvmeof.ICReq{}))
			return c
		}},
		{"capsule with a bad HLEN", nvmeof.FESInvalidHeader, func(t *testing.T) *rawConn {
			c := connected(t, false, false)
			var sqe nvmeof.SQE
			sqe.SetOpcode(nvmeof.AdminKeepAlive)
			b := c.capsule(sqe, nil)
			b[2] = 70
			c.write(b)
			return c
		}},
		{"PLEN beyond the limit", nvmeof.FESDataLimitExceeded, func(t *testing.T) *rawConn {
			c := connected(t, false, false)
			b := c.capsule(nvmeof.SQE{}, nil)
			nvmeof.PutHeader(b, nvmeof.Header{Type: nvmeof.PDUCapsuleCmd, HLen: 72, PDO: 72, PLen: 64 << 20})
			c.write(b)
			return c
		}},
		{"bad header digest", nvmeof.FESHeaderDigest, func(t *testing.T) *rawConn {
			c := connected(t, true, false)
			var sqe nvmeof.SQE
			sqe.SetOpcode(nvmeof.AdminKeepAlive)
			b := c.capsule(sqe, nil)
			b[nvmeof.CapsuleCmdHLen] ^= 0xFF
			c.write(b)
			return c
		}},
		{"header digest flag missing", nvmeof.FESInvalidHeader, func(t *testing.T) *rawConn {
			c := connected(t, true, false)
			c.hdgst = false
			var sqe nvmeof.SQE
			sqe.SetOpcode(nvmeof.AdminKeepAlive)
			c.write(c.capsule(sqe, nil))
			return c
		}},
		{"in-capsule data beyond the admin limit", nvmeof.FESDataLimitExceeded, func(t *testing.T) *rawConn {
			c := connected(t, false, false)
			sqe := setFeatureSQE(c.nextCID(), nvmeof.FeatHostID, 16<<10)
			sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, 16<<10)
			c.write(c.capsule(sqe, make([]byte, 16<<10)))
			return c
		}},
		{"H2CData for an unknown tag", nvmeof.FESInvalidHeader, func(t *testing.T) *rawConn {
			c := connected(t, false, false)
			c.write(c.h2cData(1, 0x7777, 0, make([]byte, 512)))
			return c
		}},
		{"H2CData for a command that awaits none", nvmeof.FESInvalidHeader, func(t *testing.T) *rawConn {
			c := connected(t, false, false)
			c.write(c.h2cData(1, 0, 0, make([]byte, 512)))
			return c
		}},
		{"H2CData out of range", nvmeof.FESDataOutOfRange, func(t *testing.T) *rawConn {
			c := connected(t, false, false)
			c.write(c.capsule(setFeatureSQE(77, nvmeof.FeatHostID, 512), nil))
			h, b := c.readPDU()
			if h.Type != nvmeof.PDUR2T {
				t.Fatalf("PDU type %#x, want R2T", h.Type)
			}
			r2t, _ := nvmeof.DecodeDataPDU(b)
			c.write(c.h2cData(77, r2t.TTag, 256, make([]byte, 512)))
			return c
		}},
		{"host exceeds its queue depth", nvmeof.FESSequenceError, func(t *testing.T) *rawConn {
			c := connected(t, false, false)
			// Each write-direction command waits for its data and holds a
			// slot; the admin queue has 32 entries.
			n := 0
			for ; n < 32+slotSlack+1; n++ {
				c.write(c.capsule(setFeatureSQE(c.nextCID(), nvmeof.FeatHostID, 4096), nil))
			}
			r2ts := 0
			for {
				h, b, err := c.tryReadPDU()
				if err != nil {
					t.Fatalf("after %d R2Ts: %v", r2ts, err)
				}
				if h.Type == nvmeof.PDUR2T {
					r2ts++
					continue
				}
				if h.Type != nvmeof.PDUC2HTermReq {
					t.Fatalf("PDU type %#x", h.Type)
				}
				if r2ts < 31 {
					t.Errorf("terminated after %d commands, before the queue (31 commands) was full", r2ts)
				}
				tr, _ := nvmeof.DecodeTermReq(b)
				if tr.FES != nvmeof.FESSequenceError {
					t.Errorf("FES %#x, want %#x", tr.FES, nvmeof.FESSequenceError)
				}
				c.expectEOF()
				return nil
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tt.ln.ProtocolErrors.Load()
			if c := tc.run(t); c != nil {
				c.expectTermReq(tc.fes)
			}
			if tt.ln.ProtocolErrors.Load() != before+1 {
				t.Errorf("ProtocolErrors %d, want %d", tt.ln.ProtocolErrors.Load(), before+1)
			}
			roundTrip(t, healthy, int64(i)*4096, 4096, byte(i))
		})
	}
	// Shutdown waits for every connection goroutine: no controller of a
	// terminated connection may outlive it.
	if err := tt.ln.Close(); err != nil {
		t.Fatal(err)
	}
	if n := tt.tgt.Controllers(); n != 0 {
		t.Errorf("Controllers() = %d after the listener closed", n)
	}
}

func TestDataDigestErrorClosesConnection(t *testing.T) {
	tt := startTarget(t, nil)
	healthy := namespace(t, tt.connect(t, initiator.Options{HeaderDigest: true, DataDigest: true}))
	c := dialRaw(t, tt.addr())
	c.init(true, true)
	// Connect with its data sent through R2T/H2CData, whose digest is bad.
	var sqe nvmeof.SQE
	sqe.SetConnect(0, 31, 0)
	sqe.SetCID(5)
	sqe.SetFlags(nvmeof.FlagsSGL)
	sqe.SGL().SetDataBlock(nvmeof.SGLTransport, 0, nvmeof.ConnectDataSize)
	c.write(c.capsule(sqe, nil))
	h, b := c.readPDU()
	if h.Type != nvmeof.PDUR2T {
		t.Fatalf("PDU type %#x, want R2T", h.Type)
	}
	r2t, _ := nvmeof.DecodeDataPDU(b)
	if r2t.CCCID != 5 || r2t.Offset != 0 || r2t.Length != nvmeof.ConnectDataSize {
		t.Fatalf("R2T %+v", r2t)
	}
	data := make([]byte, nvmeof.ConnectDataSize)
	cd := nvmeof.ConnectData{HostID: hostID, CntlID: nvmeof.CntlIDDynamic, SubNQN: testNQN, HostNQN: hostNQN}
	cd.Encode(data)
	pdu := c.h2cData(5, r2t.TTag, 0, data)
	pdu[len(pdu)-1] ^= 1
	c.write(pdu)
	c.expectEOF()
	roundTrip(t, healthy, 0, 64<<10, 3)
	if tt.tgt.Controllers() != 1 {
		t.Errorf("Controllers() = %d, want 1", tt.tgt.Controllers())
	}
}

func TestDigestsEndToEnd(t *testing.T) {
	tt := startTarget(t, nil)
	for _, o := range []initiator.Options{{HeaderDigest: true}, {DataDigest: true}, {HeaderDigest: true, DataDigest: true}} {
		ns := namespace(t, tt.connect(t, o))
		roundTrip(t, ns, 0, 4096, 1)
		roundTrip(t, ns, 1<<20, 256<<10, 2) // R2T/H2CData and large C2HData
	}
}

func TestHostNotAllowed(t *testing.T) {
	tt := startTarget(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := initiator.Connect(ctx, initiator.Config{Addr: tt.addr(), SubNQN: testNQN,
		Options: initiator.Options{HostNQN: strangerN, Logger: quietLogger()}})
	if !errors.Is(err, &nvmeof.StatusError{Status: nvmeof.StatusConnectInvalidHost}) {
		t.Fatalf("connect as a stranger: %v, want Connect Invalid Host", err)
	}
	var se *nvmeof.StatusError
	if !errors.As(err, &se) || se.Status.SCT() != 1 || se.Status.SC() != 0x84 {
		t.Errorf("status %+v, want sct 1 sc 0x84", se)
	}
	if tt.tgt.Controllers() != 0 {
		t.Errorf("Controllers() = %d", tt.tgt.Controllers())
	}
	// Allowing the host lets it in.
	tt.ss.AllowHost(strangerN)
	c := tt.connect(t, initiator.Options{HostNQN: strangerN})
	roundTrip(t, namespace(t, c), 0, 4096, 9)
}

func TestKeepAliveExpiryFreesController(t *testing.T) {
	tt := startTarget(t, nil)
	healthy := namespace(t, tt.connect(t, initiator.Options{}))
	c := dialRaw(t, tt.addr())
	c.init(false, false)
	if _, st := c.connectAdmin(testNQN, hostNQN, 1000); !st.OK() {
		t.Fatalf("connect: %v", st)
	}
	if tt.tgt.Controllers() != 2 {
		t.Fatalf("Controllers() = %d, want 2", tt.tgt.Controllers())
	}
	// Silence: after KATO the target deletes the controller and closes the
	// connection; the controller ID is freed before the socket closes.
	c.expectEOF()
	if n := tt.tgt.Controllers(); n != 1 {
		t.Errorf("Controllers() = %d after keep-alive expiry, want 1", n)
	}
	if tt.tgt.Stats.KeepAliveExpired.Load() != 1 {
		t.Errorf("KeepAliveExpired = %d", tt.tgt.Stats.KeepAliveExpired.Load())
	}
	roundTrip(t, healthy, 0, 4096, 4)
}

// fuaSpy records the FUA flag of writes and counts flushes.
type fuaSpy struct {
	backend.Backend
	fuaWrites, writes, flushes atomic.Int64
}

func (s *fuaSpy) WriteAt(p []byte, off int64, fua bool) error {
	s.writes.Add(1)
	if fua {
		s.fuaWrites.Add(1)
	}
	return s.Backend.WriteAt(p, off, fua)
}

func (s *fuaSpy) Flush() error {
	s.flushes.Add(1)
	return s.Backend.Flush()
}

func TestFlushAndFUA(t *testing.T) {
	mem, err := backend.NewMem(16<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	spy := &fuaSpy{Backend: mem}
	tt := startTarget(t, spy)
	ns := namespace(t, tt.connect(t, initiator.Options{}))
	p := bytes.Repeat([]byte{0x5A}, 4096)
	if _, err := ns.WriteAt(p, 0); err != nil {
		t.Fatal(err)
	}
	if spy.writes.Load() != 1 || spy.fuaWrites.Load() != 0 {
		t.Errorf("plain write: %d writes, %d FUA", spy.writes.Load(), spy.fuaWrites.Load())
	}
	if _, err := ns.WriteAtFUA(p, 4096); err != nil {
		t.Fatal(err)
	}
	if spy.fuaWrites.Load() != 1 {
		t.Errorf("WriteAtFUA reached the backend without FUA")
	}
	flushes := spy.flushes.Load()
	if err := ns.Flush(); err != nil {
		t.Fatal(err)
	}
	if spy.flushes.Load() != flushes+1 {
		t.Errorf("Flush did not reach the backend")
	}
}

func TestFileBackendSurvivesRestart(t *testing.T) {
	path := t.TempDir() + "/ns1.img"
	open := func() backend.Backend {
		be, err := backend.OpenFile(path, backend.FileOptions{Size: 8 << 20, BlockSize: 4096})
		if err != nil {
			t.Skip(err)
		}
		return be
	}
	want := make([]byte, 128<<10)
	for i := range want {
		want[i] = byte(i*31 + i>>8)
	}

	// First life: write, flush, shut everything down.
	{
		tgt := target.New(target.Options{Logger: quietLogger()})
		ss, _ := tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, AllowAnyHost: true})
		if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: open()}); err != nil {
			t.Fatal(err)
		}
		ln, err := Listen(tgt, "127.0.0.1:0", Options{Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		tt := &testTarget{tgt: tgt, ss: ss, ln: ln}
		c := tt.connect(t, initiator.Options{})
		ns := namespace(t, c)
		if _, err := ns.WriteAt(want, 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := ns.Flush(); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		if err := tgt.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 8<<20 {
		t.Fatalf("backing file: %v %v", fi, err)
	}
	// Second life: a new target over the same file reads the data back.
	tt := startTarget(t, open())
	c := tt.connect(t, initiator.Options{})
	ns := namespace(t, c)
	if ns.Size() != 8<<20 || ns.BlockSize() != 4096 {
		t.Fatalf("namespace size %d block %d", ns.Size(), ns.BlockSize())
	}
	got := make([]byte, len(want))
	if _, err := ns.ReadAt(got, 1<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("data written and flushed before the restart is not there")
	}
}

func TestShutdownClosesConnections(t *testing.T) {
	tt := startTarget(t, nil)
	c := tt.connect(t, initiator.Options{})
	ns := namespace(t, c)
	roundTrip(t, ns, 0, 4096, 1)
	raw := dialRaw(t, tt.addr())
	raw.init(false, false)
	if _, st := raw.connectAdmin(testNQN, hostNQN, 0); !st.OK() {
		t.Fatal(st)
	}
	idle := dialRaw(t, tt.addr()) // never sends ICReq
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tt.ln.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	raw.expectEOF()
	idle.expectEOF()
	if n := tt.tgt.Controllers(); n != 0 {
		t.Errorf("Controllers() = %d after Shutdown", n)
	}
	if _, err := ns.ReadAt(make([]byte, 4096), 0); err == nil {
		t.Error("read succeeded after the listener shut down")
	}
	if len(tt.tgt.Ports()) != 0 {
		t.Errorf("ports %v after Shutdown", tt.tgt.Ports())
	}
	if err := tt.ln.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestManyHostsConcurrently(t *testing.T) {
	tt := startTarget(t, nil)
	ns := namespace(t, tt.connect(t, initiator.Options{}))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := bytes.Repeat([]byte{byte(g + 1)}, 16<<10)
			got := make([]byte, len(p))
			for i := range 20 {
				off := int64(g)*(1<<20) + int64(i)*int64(len(p))
				if _, err := ns.WriteAt(p, off); err != nil {
					errs <- err
					return
				}
				if _, err := ns.ReadAt(got, off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, p) {
					errs <- errors.New("data mismatch")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
