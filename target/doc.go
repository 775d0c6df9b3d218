// Package target is flashpath's NVMe-over-Fabrics target core: subsystems,
// namespaces, the discovery service, controllers (dynamic model) and the
// admin, fabrics and NVM command sets.
//
// The core never knows which transport carried a command. A transport
// (target/tcp for NVMe/TCP, target/rdma for NVMe/RDMA) accepts
// connections, turns each into a queue pair with Target.NewQueue, hands
// every received command capsule to Queue.Execute as a *Request with its
// data buffer, and is called back through QueueTransport.Complete when the
// command is done — inline for most commands, later and from another
// goroutine for asynchronous I/O and Asynchronous Event Requests.
// Namespace backends live in target/backend; target/server is the daemon
// around them (configuration, listeners, reload, metrics).
//
// Starting a target with one memory namespace on NVMe/TCP:
//
//	tgt := target.New(target.Options{Logger: slog.Default()})
//	ss, _ := tgt.AddSubsystem(target.SubsystemConfig{NQN: "nqn.2026-11.io.flashpath:demo", AllowAnyHost: true})
//	be, _ := backend.NewMem(1<<30, 512)
//	ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be})
//	ln, _ := tcp.Listen(tgt, "127.0.0.1:4420", tcp.Options{})
//	defer ln.Close()
package target
