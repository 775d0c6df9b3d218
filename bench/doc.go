// Package bench is flashpath's storage benchmark: fio's job language and
// JSON output, driven by a core that keeps iodepth I/Os in flight per job
// through pluggable engines, and never becomes the bottleneck itself.
//
// The core is modelled on fio's backend: a job owns a fixed set of I/O
// slots (fio's io_u), hands them to its Engine with Queue, submits the
// staged batch with Commit and reaps completions with GetEvents. Latency of
// every I/O goes into a preallocated log-linear histogram; nothing is
// allocated per I/O.
//
//	options / job file ─► []*Job ─► Run ─► worker per job ─► Engine
//	                                  │        (Queue, Commit, GetEvents)
//	                                  └─► Report ─► fio-like text or JSON
//
// Engines register themselves by name (RegisterEngine) from their own files
// or packages: "null" and the local-file engines "psync" and "io_uring"
// live here; network and GPU engines live with the code they drive.
package bench
