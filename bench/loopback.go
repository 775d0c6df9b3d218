package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// TCPLoopback measures a plain Go socket copy over 127.0.0.1 for d: one
// connection, 256 KiB writes, the reader discarding. It is the ceiling an
// NVMe/TCP path on this host could reach, reported beside its results.
// It returns bytes per second.
func TCPLoopback(ctx context.Context, d time.Duration) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()

	var wg sync.WaitGroup
	var received int64
	var rerr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			rerr = err
			return
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		for {
			n, err := c.Read(buf)
			received += int64(n)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					rerr = err
				}
				return
			}
		}
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	deadline := start.Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			wg.Wait()
			return 0, err
		}
	}
	c.Close()
	wg.Wait()
	if rerr != nil {
		return 0, rerr
	}
	return float64(received) / time.Since(start).Seconds(), nil
}

// FormatRate prints bytes per second as fio does (MiB/s with the SI figure).
func FormatRate(bps float64) string {
	return formatBytes(bps) + "/s (" + formatSI(bps) + "/s)"
}
