package fabrics

import (
	"context"
	"errors"
	"fmt"

	"github.com/flashpath/flashpath/bench"
	"github.com/flashpath/flashpath/initiator"
)

// mpEngine is the engine over several paths to one namespace
// (tcp://HOST1:PORT,HOST2:PORT/NQN/NSID): one controller and one I/O
// queue per path, each batch of commands sent on the path
// initiator.Multipath picks (optimized first, the fewest in flight), and
// a command that fails because of its path (lost connection, ANA
// inaccessible) sent again on another path, as the Linux host's native
// multipath requeues it; the job sees no error.
type mpEngine struct {
	slots
	m    *initiator.Multipath
	path []*initiator.Path // the path each request was last sent on
}

func openMultipath(ctx context.Context, cfg *bench.EngineConfig, o options, t initiator.NamespaceURL, scheme string) (bench.Engine, error) {
	if _, set := cfg.Options["polled"]; set && o.polled {
		return nil, fmt.Errorf("polled=1 with %d paths: a job polls one connection; leave polled out (each path's receive goroutine hands completions over)", len(t.Addrs()))
	}
	o.polled = false
	var cfgs []initiator.Config
	for _, a := range t.Addrs() {
		cfgs = append(cfgs, controllerConfig(cfg, o, scheme+"://"+a, t.NQN))
	}
	m, err := initiator.ConnectMultipath(ctx, cfgs, t.NSID)
	if err != nil {
		return nil, err
	}
	e := &mpEngine{slots: newSlots(cfg, t.NSID, m.BlockSize()), m: m}
	e.path = make([]*initiator.Path, len(e.reqs))
	return e, nil
}

func (e *mpEngine) Size() int64 { return e.m.Size() }

// Offloaded: the host's receive goroutines run the I/O (bench.Offloaded).
func (e *mpEngine) Offloaded() {}

// Sync sends an NVMe Flush on one path: the paths share the storage.
func (e *mpEngine) Sync(bool) error { return e.m.Flush() }

// Buffers registers through the first path's controller: every path runs
// on the same transport.
func (e *mpEngine) Buffers(n, size int) ([]bench.Buffer, error) {
	return e.buffers(e.m.Paths()[0].Controller(), n, size)
}

func (e *mpEngine) Commit() error { return e.send(e.stage()) }

// send submits batch on the best path, and what a failing queue did not
// take on the next best.
func (e *mpEngine) send(batch []*initiator.Request) error {
	for len(batch) > 0 {
		p, qs, err := e.m.Pick(context.Background())
		if err != nil {
			return err
		}
		for _, r := range batch {
			e.path[r.Tag] = p
		}
		p.InFlight(int64(len(batch)))
		n, err := qs[0].SubmitBatch(batch)
		if err == nil {
			return nil
		}
		// The queue failed under the batch: its path is down until it
		// reconnects; the rest goes elsewhere.
		p.InFlight(-int64(len(batch) - n))
		batch = batch[n:]
	}
	return nil
}

// failover sends r again on another path when its own failed it (lost
// connection, path related status); false leaves r to be reaped.
func (e *mpEngine) failover(r *initiator.Request) bool {
	i := r.Tag
	err := r.Error()
	if err == nil || e.tries[i] >= e.maxTries() {
		return false
	}
	if r.Err == nil && !e.m.PathFailed(e.path[i], err) {
		return false // an NVMe status of the command's own
	}
	e.tries[i]++
	r.Err, r.Status = nil, 0
	if err := e.send([]*initiator.Request{r}); err != nil {
		r.Err = err // no path left: the job sees why
		return false
	}
	return true
}

// maxTries bounds how often one I/O moves to another path.
func (e *mpEngine) maxTries() int { return (maxResends + 1) * len(e.m.Paths()) }

func (e *mpEngine) GetEvents(minEvents int, events []*bench.IO) ([]*bench.IO, error) {
	got := 0
	for len(events) < cap(events) {
		var r *initiator.Request
		if got < minEvents {
			r = <-e.done
		} else {
			select {
			case r = <-e.done:
			default:
				return events, nil
			}
		}
		e.path[r.Tag].InFlight(-1)
		if !e.failover(r) {
			events = e.reap(r, events)
			got++
		}
	}
	return events, nil
}

func (e *mpEngine) Close() error { return errors.Join(e.m.Close(), e.close()) }
