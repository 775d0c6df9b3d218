package tcp

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/fuzzcorpus"
	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/nvmeof"
)

var writeSeeds = flag.Bool("write-seeds", false, "rewrite testdata/fuzz/FuzzRecv from recvSeeds")

// ctrlPDU encodes a PDU as a controller sends it: header (and its digest
// with hd), then data placed right after the header (and its digest with
// dd). psh fills the PDU-specific header.
func ctrlPDU(typ, flags uint8, hlen int, psh func(b []byte), data []byte, hd, dd bool) []byte {
	b := tcppeer.Header(typ, flags, hlen)
	psh(b)
	return tcppeer.Framing{HDigest: hd, DDigest: dd}.PDU(b, data)
}

func seedData(cid uint16, off uint32, data []byte, flags uint8, hd, dd bool) []byte {
	return ctrlPDU(nvmeof.PDUC2HData, flags, nvmeof.DataHLen, func(b []byte) {
		(&nvmeof.DataPDU{CCCID: cid, Offset: off, Length: uint32(len(data))}).Encode(b)
	}, data, hd, dd)
}

func seedR2T(cid, ttag uint16, off, n uint32, hd bool) []byte {
	return ctrlPDU(nvmeof.PDUR2T, 0, nvmeof.R2THLen, func(b []byte) {
		(&nvmeof.DataPDU{CCCID: cid, TTag: ttag, Offset: off, Length: n}).Encode(b)
	}, nil, hd, false)
}

func seedRsp(cid uint16, st nvmeof.Status, hd bool) []byte {
	return ctrlPDU(nvmeof.PDUCapsuleRsp, 0, nvmeof.CapsuleRspHLen, func(b []byte) {
		cqe := nvmeof.CQEView(b[nvmeof.CHSize:])
		cqe.SetCID(cid)
		cqe.SetStatus(st)
	}, nil, hd, false)
}

// recvSeeds are controller byte streams for the three commands FuzzRecv
// has in flight (cid 0: a 4 KiB read, 1: an 8 KiB write, 2: a flush),
// keyed by name; the first byte selects digests (bit 0 header, bit 1 data).
func recvSeeds() map[string][]byte {
	seeds := map[string][]byte{}
	for dg := range 4 {
		hd, dd := dg&1 != 0, dg&2 != 0
		data := make([]byte, 4096)
		for i := range data {
			data[i] = byte(i)
		}
		var all []byte
		all = append(all, seedData(0, 0, data[:1024], 0, hd, dd)...)
		all = append(all, seedData(0, 1024, data[1024:], nvmeof.FlagDataLast|nvmeof.FlagDataSuccess, hd, dd)...)
		all = append(all, seedR2T(1, 7, 0, 8192, hd)...)
		all = append(all, seedRsp(1, 0, hd)...)
		all = append(all, seedRsp(2, 0, hd)...)
		seeds[fmt.Sprintf("all-complete-dg%d", dg)] = append([]byte{byte(dg)}, all...)
		// A write completed before its data was taken, and its cid's R2T after.
		early := append(seedRsp(1, nvmeof.StatusDataTransferError, hd), seedR2T(1, 7, 0, 8192, hd)...)
		seeds[fmt.Sprintf("early-completion-dg%d", dg)] = append([]byte{byte(dg)}, early...)
		// Data past the buffer, and a response for a command not in flight.
		seeds[fmt.Sprintf("out-of-range-dg%d", dg)] = append([]byte{byte(dg)}, seedData(0, 4000, data[:200], 0, hd, dd)...)
		seeds[fmt.Sprintf("unknown-cid-dg%d", dg)] = append([]byte{byte(dg)}, seedRsp(9, 0, hd)...)
	}
	seeds["termreq"] = append([]byte{0}, ctrlPDU(nvmeof.PDUC2HTermReq, 0, nvmeof.TermReqHLen, func([]byte) {}, nil, false, false)...)
	seeds["truncated"] = append([]byte{0}, seedRsp(2, 0, false)[:10]...)
	return seeds
}

// FuzzRecv feeds a host queue arbitrary bytes from the controller, after a
// valid ICResp, with a read, a write (its data solicited by R2T) and a
// flush in flight. The queue must never panic, must deliver every request
// it accepted exactly once, and must stop its goroutines on close.
func FuzzRecv(f *testing.F) {
	for _, b := range recvSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		recvBytes(t, in[0]&1 != 0, in[0]&2 != 0, in[1:])
	})
}

func recvBytes(t *testing.T, hd, dd bool, in []byte) []*initiator.Request {
	// A hang would stall the fuzzer silently: make it a crash that names the input.
	wd := time.AfterFunc(30*time.Second, func() { panic(fmt.Sprintf("recvBytes hung on %q", in)) })
	defer wd.Stop()
	host, ctrl := net.Pipe()
	submitted := make(chan struct{})
	ctrlDone := make(chan struct{})
	go func() {
		defer close(ctrlDone)
		defer ctrl.Close()
		var ic [nvmeof.ICReqSize]byte
		if _, err := io.ReadFull(ctrl, ic[:]); err != nil {
			return
		}
		resp := nvmeof.ICResp{MaxData: 4096}
		if hd {
			resp.Digest |= nvmeof.DigestHeader
		}
		if dd {
			resp.Digest |= nvmeof.DigestData
		}
		resp.Encode(ic[:])
		if _, err := ctrl.Write(ic[:]); err != nil {
			return
		}
		go io.Copy(io.Discard, ctrl) // what the host sends; ends when ctrl closes
		<-submitted
		ctrl.Write(in)
	}()
	p := initiator.QueueParams{QID: 1, Depth: 4, HDigest: hd, DDigest: dd, Log: slog.New(slog.DiscardHandler)}
	l, err := newLink(context.Background(), host, p)
	if err != nil {
		t.Fatalf("initialize the connection: %v", err)
	}
	q := initiator.StartQueue(p, l)
	done := make(chan *initiator.Request, 8)
	reqs := []*initiator.Request{
		{Op: initiator.OpRead, NSID: 1, NLB: 8, Buf: make([]byte, 4096), Done: done},
		{Op: initiator.OpWrite, NSID: 1, NLB: 16, Buf: make([]byte, 8192), Done: done},
		{Op: initiator.OpFlush, NSID: 1, Done: done},
	}
	accepted := 0
	for _, r := range reqs {
		if q.Submit(r) == nil {
			accepted++
		}
	}
	close(submitted)
	<-ctrlDone // everything written, then the controller hung up
	var got []*initiator.Request
	for range accepted {
		got = append(got, <-done) // what is left is delivered when the hang-up is seen
	}
	q.Close()
	select {
	case r := <-done:
		t.Fatalf("request %v delivered twice", r.Op)
	default:
	}
	return got
}

func TestWriteRecvSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to regenerate testdata/fuzz/FuzzRecv")
	}
	if err := fuzzcorpus.Write("FuzzRecv", recvSeeds()); err != nil {
		t.Fatal(err)
	}
}

// TestRecvSeedsComplete: the well-formed seeds complete all three
// commands successfully, so the fuzzer starts from a working stream.
func TestRecvSeedsComplete(t *testing.T) {
	for dg := range 4 {
		in := recvSeeds()[fmt.Sprintf("all-complete-dg%d", dg)]
		got := recvBytes(t, dg&1 != 0, dg&2 != 0, in[1:])
		if len(got) != 3 {
			t.Fatalf("digests %d: %d requests delivered, want 3", dg, len(got))
		}
		for _, r := range got {
			if err := r.Error(); err != nil {
				t.Errorf("digests %d: %v: %v", dg, r.Op, err)
			}
		}
		for _, r := range got {
			if r.Op == initiator.OpRead && (r.Buf[1] != 1 || r.Buf[4095] != 0xFF) {
				t.Errorf("digests %d: read data not placed", dg)
			}
		}
	}
}
