package bench

import "golang.org/x/sys/unix"

// psyncEngine does one pread/pwrite per I/O in Queue: fio's psync, a
// synchronous engine (iodepth is capped at 1).
type psyncEngine struct {
	fileSet
	mem  *HostMemory
	done []*IO
}

func init() {
	RegisterEngine("psync", func(cfg *EngineConfig) (Engine, error) {
		fs, err := openFiles(cfg)
		if err != nil {
			return nil, err
		}
		return &psyncEngine{fileSet: fs, done: make([]*IO, 0, 1)}, nil
	})
}

func (e *psyncEngine) Size() int64     { return e.size() }
func (e *psyncEngine) MaxIODepth() int { return 1 }
func (e *psyncEngine) Synchronous()    {}

func (e *psyncEngine) Buffers(n, size int) ([]Buffer, error) {
	m, err := AllocHost(n, size)
	if err != nil {
		return nil, err
	}
	e.mem = m
	return m.Bufs, nil
}

func (e *psyncEngine) Queue(io *IO) error {
	f := e.fileSet[io.File]
	if io.Op == OpTrim {
		io.Res, io.Err = f.trim(io.Offset, io.Len)
		e.done = append(e.done, io)
		return nil
	}
	b := io.Buf.Bytes[:io.Len]
	var n int
	var err error
	for {
		if io.Op == OpWrite {
			n, err = unix.Pwrite(f.fd, b, io.Offset)
		} else {
			n, err = unix.Pread(f.fd, b, io.Offset)
		}
		if err != unix.EINTR {
			break
		}
	}
	io.Res, io.Err = n, err
	if err != nil {
		io.Res = 0
	}
	e.done = append(e.done, io)
	return nil
}

func (e *psyncEngine) Commit() error { return nil }

func (e *psyncEngine) GetEvents(_ int, events []*IO) ([]*IO, error) {
	events = append(events, e.done...)
	e.done = e.done[:0]
	return events, nil
}

func (e *psyncEngine) Close() error {
	return joinErr(e.mem.Close(), e.fileSet.Close())
}

func joinErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
