package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/bench"
	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/internal/tlspsk"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
	"github.com/flashpath/flashpath/target/tcp"
)

const tlsHost = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"

// testPSK is a configured PSK of the given hash (SHA-256: 32 bytes, SHA-384: 48).
func testPSK(h dhchap.Hash, seed byte) dhchap.PSK {
	key := make([]byte, h.Size())
	for i := range key {
		key[i] = seed + byte(i*29)
	}
	return dhchap.PSK{Hash: h, Key: key}
}

// pskLookup is a target's key lookup that knows psk for tlsHost under
// the identity of the given versions.
func pskLookup(t *testing.T, psk dhchap.PSK, subnqn string, versions ...int) func(string) (tlspsk.Key, bool) {
	keys := map[string]tlspsk.Key{}
	suite := tlspsk.TLS_AES_128_GCM_SHA256
	if psk.Cipher() == dhchap.SHA384 {
		suite = tlspsk.TLS_AES_256_GCM_SHA384
	}
	for _, v := range versions {
		id, key, err := psk.TLS(tlsHost, subnqn, v)
		if err != nil {
			t.Fatal(err)
		}
		keys[id] = tlspsk.Key{Identity: id, Secret: key, Suite: suite}
	}
	return func(id string) (tlspsk.Key, bool) { k, ok := keys[id]; return k, ok }
}

// TestHostTLS: with a TLS key the host's every queue runs over TLS 1.3
// with the PSK identity derived from its NQN and the subsystem's; it
// falls back to TP 8018's identity where the target knows only that one;
// data written reads back through it.
func TestHostTLS(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hash     dhchap.Hash
		versions []int // the identity versions the target knows
		prefix   string
	}{
		{"SHA-256, NVMe/TCP 1.0c identity", dhchap.SHA256, []int{0}, "NVMe0R01 "},
		{"SHA-384, NVMe/TCP 1.0c identity", dhchap.SHA384, []int{0}, "NVMe0R02 "},
		{"SHA-256, TP 8018 identity only", dhchap.SHA256, []int{1}, "NVMe1R01 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			psk := testPSK(tc.hash, 3)
			var sub string
			tt := startFake(t, func(f *tcppeer.Controller) {
				sub = f.SubNQN
				f.TLS = pskLookup(t, psk, f.SubNQN, tc.versions...)
			})
			c := connect(t, tt, func(c *initiator.Config) { c.IOQueues, c.TLSKey = 2, psk.String() })
			ns := openNS(t, c, 1)
			want := bytes.Repeat([]byte("over TLS"), 2048)
			if _, err := ns.WriteAt(want, 8192); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(want))
			if _, err := ns.ReadAt(got, 8192); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("read back over TLS differs from what was written")
			}
			ids := tt.fake.TLSIdentities()
			if len(ids) != 3 { // admin queue and two I/O queues
				t.Fatalf("%d TLS handshakes, want 3", len(ids))
			}
			for _, id := range ids {
				if !strings.HasPrefix(id, tc.prefix+tlsHost+" "+sub) {
					t.Errorf("identity %q, want %q...", id, tc.prefix+tlsHost+" "+sub)
				}
			}
		})
	}
}

// TestHostTLSRefused: a wrong key, an unknown identity and a plain
// connection to a TLS target each fail Connect, saying what to do.
func TestHostTLSRefused(t *testing.T) {
	psk := testPSK(dhchap.SHA256, 3)
	for _, tc := range []struct {
		name string
		key  string
		sub  string // the subsystem the target's key names ("" the fake's)
		want string
	}{
		{"wrong key", testPSK(dhchap.SHA256, 4).String(), "", "holds a different TLS PSK"},
		{"unknown identity", psk.String(), "nqn.2024-01.io.flashpath:other", "has no TLS PSK for host"},
		{"no TLS", "", "", "--tls-key"},
		{"malformed key", "NVMeTLSkey-1:01:AAAA:", "", "TLSKey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt := startFake(t, func(f *tcppeer.Controller) {
				sub := tc.sub
				if sub == "" {
					sub = f.SubNQN
				}
				f.TLS = pskLookup(t, psk, sub, 0, 1)
			})
			_, err := initiator.Connect(context.Background(), initiator.Config{Addr: "tcp://" + tt.addr, SubNQN: tt.subnqn, IOQueues: 1,
				CtrlLossTimeout: -1, Options: initiator.Options{HostNQN: tlsHost, TLSKey: tc.key}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Connect: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	if _, err := initiator.Connect(context.Background(), initiator.Config{Addr: "rdma://127.0.0.1:4420", SubNQN: realNQN,
		Options: initiator.Options{HostNQN: tlsHost, TLSKey: psk.String()}}); err == nil || !strings.Contains(err.Error(), "NVMe/TCP only") {
		t.Fatalf("TLS over RDMA: %v", err)
	}
}

// startTLSTarget starts a target whose subsystem realNQN (a 16 MiB
// memory namespace) takes tlsHost over TLS only, with its listener's
// opts, and returns its address and the host options that connect.
func startTLSTarget(t testing.TB, opts tcp.Options) (string, initiator.Options) {
	t.Helper()
	psk := testPSK(dhchap.SHA256, 9)
	tgt := target.New(target.Options{Logger: slog.New(slog.DiscardHandler)})
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: realNQN, TLSKeys: map[string]dhchap.PSK{tlsHost: psk}})
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.NewMem(16<<20, 512)
	testutil.SkipIfNotSupported(t, err)
	return startTargetListen(t, tgt, ss, be, opts).addr, initiator.Options{HostNQN: tlsHost, TLSKey: psk.String()}
}

// TestTLSHostToTarget: flashpath's host and target over TLS 1.3 with a
// configured PSK: the discovery log says TLS is required, I/O and a
// verified bench job run over it, a plain connection is refused.
func TestTLSHostToTarget(t *testing.T) {
	addr, opts := startTLSTarget(t, tcp.Options{TLS: tcp.TLSRequired})

	log, err := initiator.Discover(context.Background(), "tcp://"+addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range log.Entries {
		if e.SubNQN == realNQN {
			found = true
			if e.TReq&nvmeof.TReqSecureChannelMask != nvmeof.TReqSecureChannelRequired || e.SecType != nvmeof.SecTypeTLS13 {
				t.Errorf("discovery entry: treq %v, sectype %v; want required, TLS 1.3", nvmeof.TReq(e.TReq), nvmeof.SecType(e.SecType))
			}
		}
	}
	if !found {
		t.Fatalf("discovery log over TLS lists no %s", realNQN)
	}

	c := connect(t, testTarget{addr: addr, subnqn: realNQN}, func(c *initiator.Config) { c.Options = opts; c.IOQueues = 2; c.Polled = true })
	ns := openNS(t, c, 1)
	want := bytes.Repeat([]byte("flashpath over TLS "), 1000)[:16384]
	if _, err := ns.WriteAt(want, 1<<20); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := ns.ReadAt(got, 1<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("read back over TLS differs from what was written")
	}

	dev := "tcp://" + addr + "/" + realNQN + "/1"
	r := runJob(t, "ioengine=nvme-tcp", "filename="+dev, "hostnqn="+tlsHost, "tls_key="+opts.TLSKey, "size=2m", "rw=randwrite", "bs=16k", "iodepth=8", "verify=crc32c")
	if rd := r.Dir[bench.DirRead]; rd.IOs != 128 {
		t.Fatalf("bench over TLS: verify read %d blocks, want 128", rd.IOs)
	}

	_, err = initiator.Connect(context.Background(), initiator.Config{Addr: "tcp://" + addr, SubNQN: realNQN, IOQueues: 1, CtrlLossTimeout: -1,
		Options: initiator.Options{HostNQN: tlsHost}})
	if err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("plain connect to a TLS-required listener: %v, want a refusal naming --tls-key", err)
	}
}
