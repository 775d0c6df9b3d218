// Package e2e holds flashpath's end-to-end tests: its host (package
// initiator, its bench engines and daemons) against its target (package
// target and its transports) over real sockets on 127.0.0.1 or the fake
// RDMA provider, and its host against a scripted NVMe/TCP controller.
// Neither side's own tests import the other side; these tests join them.
// Interop with the Linux kernel runs in the lab VM (test/lab).
package e2e
