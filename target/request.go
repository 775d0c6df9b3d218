package target

import (
	"github.com/flashpath/flashpath/internal/bufpool"
	"github.com/flashpath/flashpath/nvmeof"
)

// Request is one command in flight on a queue. Transports preallocate one
// per queue slot and reuse it; the core fills Rsp and hands it back through
// QueueTransport.Complete.
type Request struct {
	Cmd nvmeof.SQE
	Rsp nvmeof.CQE
	// Data is the command's data: for host-to-controller commands it holds
	// what the host sent when Execute is called; for controller-to-host
	// commands the core fills it. Its length is the SGL length.
	Data []byte
	// Buf is the pooled buffer behind Data, owned by the transport.
	Buf *bufpool.Buf
	// Slot is the transport's index for this request.
	Slot int
	// Transport-private state for the data phases.
	TTag     uint16
	Received uint32
	Pending  bool
	// Deferred is set by the core when it completes a request after Execute
	// returned (an Asynchronous Event), from another goroutine: the
	// transport must then send the response itself rather than batch it.
	Deferred bool
	// CloseAfter, set by the core, asks the transport to close the
	// connection once this response is sent (a host that keeps failing to
	// authenticate).
	CloseAfter error
	// File, where its N is not 0, holds a successful Read's data in place
	// of Data, on a queue whose transport sends from files
	// (Queue.SendFromFiles). The transport sends it, then calls FileSent.
	File FileSpan

	queue   *Queue
	fileNS  *Namespace // of File, or of Data in its memory: referenced until FileSent
	ns      *Namespace // of a read or write in flight on an async backend
	ioWrite bool
	start   int64 // nanotime when the read or write started
	gated   bool  // counted by its connection's ExecGate until its completion
}

// IODone completes a read or write that the namespace's backend ran
// asynchronously (backend.Completer); it is called from the backend's
// completion goroutine.
func (r *Request) IODone(err error) {
	q, ns := r.queue, r.ns
	r.ns = nil
	op := OpRead
	if r.ioWrite {
		op = OpWrite
	}
	st := nvmeof.StatusSuccess
	if err != nil {
		st = ns.status(op, err)
	} else {
		q.done(ns, op, int64(len(r.Data)), r.start)
	}
	ns.refs.release()
	r.Deferred = true
	q.finish(r, st)
}

// FileSpan is a read's data left in the namespace's file, for the
// transport to send with sendfile(2): N bytes of the descriptor FD from
// Off. What lies past the end of the file reads as zeros: the transport
// sends zeros for the part sendfile does not reach.
type FileSpan struct {
	FD     int
	Off, N int64
}

// FileSent ends a read whose data the transport sent from its file
// (File) or from the namespace's memory (ExecuteInPlace). err is the
// failure to read the file (a *sockio.FileError), or nil: after a
// failure the namespace's later reads go through copies, which report
// such errors to the host as NVMe statuses. It releases the
// namespace, which stays open until then; a transport also calls it for
// a request it drops unsent. Later calls do nothing.
func (r *Request) FileSent(err error) {
	ns := r.fileNS
	if ns == nil {
		return
	}
	r.fileNS, r.File = nil, FileSpan{}
	if err != nil && ns.source != nil {
		ns.source.SendFailed(err)
	}
	ns.refs.release()
}

// Dir is a command's data direction.
type Dir uint8

// Data directions (NVMe Base 2.0 §4.2: opcode bits 1:0; fabrics commands by FCTYPE bits 1:0).
const (
	DirNone Dir = 0
	DirH2C  Dir = 1 // host to controller (write)
	DirC2H  Dir = 2 // controller to host (read)
	DirBidi Dir = 3
)

// Direction returns the data direction of the command.
func (r *Request) Direction() Dir {
	op := r.Cmd.Opcode()
	if op == nvmeof.OpFabrics {
		return Dir(r.Cmd.FCType() & 3)
	}
	return Dir(op & 3)
}

// SetStatus sets the completion status.
func (r *Request) SetStatus(s nvmeof.Status) { r.Rsp.SetStatus(s) }

// Status returns the completion status.
func (r *Request) Status() nvmeof.Status { return r.Rsp.Status() }
