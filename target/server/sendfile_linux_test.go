package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/flashpath/flashpath/initiator"
)

// TestSendfileConfig: with sendfile on (the default) a buffered file
// namespace's large reads are sent from the page cache, which the metric
// counts; `sendfile: false` copies them. The host reads the file's bytes
// either way.
func TestSendfileConfig(t *testing.T) {
	const nqn = "nqn.2026-12.io.flashpath:sendfile"
	data := make([]byte, 2<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	path := filepath.Join(t.TempDir(), "shard.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint("sendfile=", on), func(t *testing.T) {
			cfg := &Config{
				Listeners:  []string{"tcp://127.0.0.1:0"},
				Metrics:    "127.0.0.1:0",
				Subsystems: []SubsystemConfig{{NQN: nqn, Namespaces: []NamespaceConfig{{NSID: 1, Backend: "file:" + path + "?ro&buffered"}}}},
			}
			if !on {
				cfg.Sendfile = new(false)
			}
			srv, err := Start(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Shutdown(context.Background()) })
			ctx := context.Background()
			c, err := initiator.Connect(ctx, initiator.Config{Addr: srv.Listeners[0].Addr().String(), SubNQN: nqn, IOQueues: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ns, err := c.Namespace(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(data))
			if _, err := ns.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read: %v, or its data differs", err)
			}
			want := 0.0
			if on {
				want = float64(len(data))
			}
			m := scrape(t, srv.MetricsAddr())
			if v := m[`flashpath_target_namespace_sendfile_bytes_total{nsid="1",subsys="`+nqn+`"}`]; v != want {
				t.Errorf("sendfile_bytes_total %v, want %v", v, want)
			}
		})
	}
}
