// Package initiator is a user-space NVMe/TCP host: it discovers subsystems,
// connects to a controller and moves data, the counterpart of the Linux
// host's drivers/nvme/host/tcp.c and fabrics.c.
//
// Discover reads the discovery log of a discovery controller. Connect
// brings up a Controller: an admin queue and I/O queues, each its own TCP
// connection with one goroutine owning its receive side, and a keep-alive
// goroutine. Close shuts the controller down (CC.SHN) and closes every
// connection. When a connection fails, the controller reconnects (a new
// controller ID and new queues, every Config.ReconnectDelay, for up to
// Config.CtrlLossTimeout) and Namespace operations caught by the failure
// run again on the new queues.
//
// Two I/O interfaces sit on the queues:
//
//   - Namespace: blocking ReadAt, WriteAt, Compare, WriteZeroes,
//     Deallocate and Flush, safe for many goroutines, spread over the
//     queues, with large I/Os split at the maximum transfer size; no
//     allocation per call up to 16 commands' worth.
//   - Queue.Submit: the asynchronous, allocation-free path. The caller
//     owns each Request, submits it to a Queue and gets it back through a
//     channel (Request.Done) or a callback (Request.OnDone) with the NVMe
//     status set. Up to Queue.Depth requests are in flight per queue.
//
// Data moves without copies where the protocol allows: writes that fit
// the controller's in-capsule data size (IOCCSZ) go in the command capsule,
// larger ones are sent in H2CData PDUs in answer to R2Ts (at most
// MAXH2CDATA bytes each); C2HData PDUs are read straight into the
// request's buffer.
//
//	host                                   controller
//	 | CapsuleCmd (SQE [+ in-capsule data]) -> |
//	 | <- R2T (offset, length)                 |   writes beyond IOCCSZ
//	 | H2CData ... (<= MAXH2CDATA each)     -> |
//	 | <- C2HData ... [SUCCESS: no response]   |   reads
//	 | <- CapsuleRsp (CQE)                     |
package initiator
