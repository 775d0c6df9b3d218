// Package initiator is flashpath's user-space NVMe-oF host: it discovers
// subsystems, connects to controllers and moves data, the counterpart of
// the Linux host's drivers/nvme/host/core.c and fabrics.c. It is the
// transport-neutral core; the transports live beneath it and register
// themselves when imported, as the Linux host's tcp.c and rdma.c fill in
// struct nvme_ctrl_ops:
//
//	initiator          Controller (session, bring-up, reconnect), Queue
//	                   (slots, Submit, timeouts), Namespace, discovery
//	  └─ Transport     DialQueue, Register          (transport.go)
//	       └─ Link     Prepare/Send/Flush, Receive  (one queue pair)
//	initiator/tcp      NVMe/TCP: a TCP connection per queue pair
//	initiator/rdma     NVMe/RDMA: an RDMA queue pair per queue pair
//
// Discover reads the discovery log of a discovery controller;
// ConnectDiscovery keeps a discovery connection for its change notices.
// Connect brings up a Controller: an admin queue and I/O queues, each
// with one goroutine owning its receive side, and a keep-alive goroutine.
// Close shuts the controller down (CC.SHN) and closes every connection.
// When a connection fails, the controller reconnects (a new controller ID
// and new queues, every Config.ReconnectDelay, for up to
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
// Data moves without copies where the transport allows: over NVMe/TCP
// in-capsule writes and C2HData read straight into the request's buffer;
// over NVMe/RDMA the controller reads and writes buffers in memory
// registered with Controller.Register directly.
package initiator
