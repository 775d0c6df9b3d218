package bench

// nullEngine completes every I/O at once without moving data: it measures
// the core itself (fio's null engine). Its size is 1 TiB unless size= says
// otherwise, so random offsets spread as they would on a device.
type nullEngine struct {
	mem   *HostMemory
	done  []*IO
	files int
}

func init() {
	RegisterEngine("null", func(cfg *EngineConfig) (Engine, error) {
		return &nullEngine{done: make([]*IO, 0, cfg.IODepth), files: max(len(cfg.Filenames), 1)}, nil
	})
}

func (e *nullEngine) Size() int64 { return 1 << 40 }

// Files takes any nrfiles: nothing is opened.
func (e *nullEngine) Files() int { return e.files }

func (e *nullEngine) Buffers(n, size int) ([]Buffer, error) {
	m, err := AllocHost(n, size)
	if err != nil {
		return nil, err
	}
	e.mem = m
	return m.Bufs, nil
}

func (e *nullEngine) Queue(io *IO) error {
	io.Res = io.Len
	e.done = append(e.done, io)
	return nil
}

func (e *nullEngine) Commit() error { return nil }

// Sync does nothing, as fio's null engine.
func (e *nullEngine) Sync(bool) error { return nil }

func (e *nullEngine) GetEvents(_ int, events []*IO) ([]*IO, error) {
	n := min(len(e.done), cap(events)-len(events))
	events = append(events, e.done[:n]...)
	e.done = e.done[:copy(e.done, e.done[n:])]
	return events, nil
}

func (e *nullEngine) Close() error { return e.mem.Close() }
