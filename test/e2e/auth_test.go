package e2e

import (
	"context"
	"crypto/rand"
	"log/slog"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/initiator"
	hostrdma "github.com/flashpath/flashpath/initiator/rdma"
	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/rdma/rdmatest"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

func newSecret(t testing.TB, h dhchap.Hash) dhchap.Secret {
	t.Helper()
	s, err := dhchap.GenerateSecret(rand.Reader, h, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// startAuthTarget serves realNQN to testHost, which must authenticate
// with keys.
func startAuthTarget(t testing.TB, opts target.Options, keys target.HostKeys) testTarget {
	t.Helper()
	be, err := backend.NewMem(16<<20, 512)
	testutil.SkipIfNotSupported(t, err)
	opts.Logger = slog.New(slog.DiscardHandler)
	tgt := target.New(opts)
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: realNQN, Keys: map[string]target.HostKeys{testHost: keys}})
	if err != nil {
		t.Fatal(err)
	}
	return startTargetWith(t, tgt, ss, be, 0)
}

// TestAuthTarget: flashpath's host authenticates to flashpath's target on
// every queue (one way and both ways, each hash, with and without a DH
// exchange), and then reads back what it wrote.
func TestAuthTarget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hash   dhchap.Hash // of the secrets' transformation
		opts   target.Options
		bidi   bool
		hashes []dhchap.Hash
	}{
		{name: "default", hash: dhchap.SHA256},
		{name: "bidirectional", hash: dhchap.SHA384, bidi: true},
		{name: "null-dh-sha256", opts: target.Options{AuthHashes: []dhchap.Hash{dhchap.SHA256}, AuthDHGroups: []dhchap.DHGroup{dhchap.DHNull}}, bidi: true},
		{name: "ffdhe3072-sha384", hash: dhchap.SHA512, opts: target.Options{AuthHashes: []dhchap.Hash{dhchap.SHA384}, AuthDHGroups: []dhchap.DHGroup{dhchap.FFDHE3072}}},
		{name: "untransformed", hash: 0, bidi: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := target.HostKeys{Key: newSecret(t, tc.hash)}
			if tc.bidi {
				k := newSecret(t, tc.hash)
				keys.CtrlKey = &k
			}
			tt := startAuthTarget(t, tc.opts, keys)
			c := connect(t, tt, func(c *initiator.Config) {
				c.DHCHAPSecret = keys.Key.String()
				if tc.bidi {
					c.DHCHAPCtrlSecret = keys.CtrlKey.String()
				}
			})
			readWriteRandom(t, openNS(t, c, tt.nsid), 1)
			if got, want := tt.tgt.Stats.Authentications.Load(), uint64(1+len(c.Queues())); got != want {
				t.Errorf("%d queues authenticated, want %d (admin and every I/O queue)", got, want)
			}
			if n := tt.tgt.Stats.AuthFailures.Load(); n != 0 {
				t.Errorf("%d failed authentications", n)
			}
		})
	}
}

// TestAuthRefused: without the right secrets nothing connects, and the
// error says what to do.
func TestAuthRefused(t *testing.T) {
	key, ctrl := newSecret(t, dhchap.SHA256), newSecret(t, dhchap.SHA256)
	tt := startAuthTarget(t, target.Options{}, target.HostKeys{Key: key, CtrlKey: &ctrl})
	wrong := newSecret(t, dhchap.SHA256).String()
	for _, tc := range []struct {
		name       string
		key, ctrl  string
		want       string
		tgtFailure bool
	}{
		{"no secret", "", "", "requires DH-HMAC-CHAP authentication", false},
		{"wrong secret", wrong, "", "the target refused the host's credentials", true},
		{"wrong controller secret", key.String(), wrong, "does not match the controller key", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tt.tgt.Stats.AuthFailures.Load()
			cfg := initiator.Config{Addr: "tcp://" + tt.addr, SubNQN: tt.subnqn, IOQueues: 1,
				Options: initiator.Options{HostNQN: testHost, DHCHAPSecret: tc.key, DHCHAPCtrlSecret: tc.ctrl}}
			c, err := initiator.Connect(context.Background(), cfg)
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			if failed := tt.tgt.Stats.AuthFailures.Load() > before; failed != tc.tgtFailure {
				t.Errorf("target counted a failure: %v, want %v", failed, tc.tgtFailure)
			}
		})
	}
	if n := tt.tgt.Stats.Authentications.Load(); n != 0 {
		t.Errorf("%d queues authenticated", n)
	}
}

// TestAuthControllerMustProve: a host with a controller secret
// authenticates even where the target does not ask, and refuses a target
// that holds no key for it.
func TestAuthControllerMustProve(t *testing.T) {
	tt := startTarget(t, 16<<20, 0)
	k, ck := newSecret(t, dhchap.SHA256), newSecret(t, dhchap.SHA256)
	cfg := initiator.Config{Addr: "tcp://" + tt.addr, SubNQN: tt.subnqn, IOQueues: 1,
		Options: initiator.Options{HostNQN: testHost, DHCHAPSecret: k.String(), DHCHAPCtrlSecret: ck.String()}}
	c, err := initiator.Connect(context.Background(), cfg)
	if err == nil {
		c.Close()
		t.Fatal("connected to a target that cannot authenticate itself")
	}
	if !strings.Contains(err.Error(), "authenticate queue 0") {
		t.Fatalf("error %q", err)
	}
	// Discovery asks for no authentication, and gets none.
	if _, err := initiator.Discover(context.Background(), "tcp://"+tt.disc, cfg.Options); err != nil {
		t.Fatalf("discovery with a controller secret: %v", err)
	}
	// With only a host secret, a target that does not ask is fine.
	readWriteRandom(t, openNS(t, connect(t, tt, func(c *initiator.Config) { c.DHCHAPSecret = k.String() }), tt.nsid), 1)
}

// TestAuthRDMA: the same transaction over NVMe/RDMA (the core runs it,
// whatever carries the capsules), on the fake verbs provider.
func TestAuthRDMA(t *testing.T) {
	key, ctrl := newSecret(t, dhchap.SHA384), newSecret(t, dhchap.SHA512)
	prov := rdmatest.New()
	ln := rdmaTargetKeys(t, prov, "169.254.42.1:4420", map[string]target.HostKeys{testHost: {Key: key, CtrlKey: &ctrl}})
	cfg := initiator.Config{Addr: "rdma://" + ln.Addr().String(), SubNQN: realNQN, Transport: hostrdma.New(prov), IOQueues: 2, QueueDepth: 16,
		CtrlLossTimeout: -1, Options: initiator.Options{HostNQN: testHost, Logger: slog.New(slog.DiscardHandler)}}
	if c, err := initiator.Connect(context.Background(), cfg); err == nil {
		c.Close()
		t.Fatal("connected without a secret")
	}
	cfg.DHCHAPSecret, cfg.DHCHAPCtrlSecret = key.String(), ctrl.String()
	c, err := initiator.Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	readWriteRandom(t, openNS(t, c, 1), 1)
}

// TestAuthKeyRotation: the target's key for a host changes while the host
// is connected (as a reload does); new connections need the new key, and
// the connected host re-authenticates every queue with it and carries on.
// Re-authenticating with a key the target no longer has takes the queues'
// right to run commands away.
func TestAuthKeyRotation(t *testing.T) {
	old, next := newSecret(t, dhchap.SHA256), newSecret(t, dhchap.SHA256)
	tt := startAuthTarget(t, target.Options{}, target.HostKeys{Key: old})
	c := connect(t, tt, func(c *initiator.Config) { c.DHCHAPSecret = old.String() })
	ns := openNS(t, c, tt.nsid)
	readWriteRandom(t, ns, 1)

	tt.ss.SetHosts(false, nil, map[string]target.HostKeys{testHost: {Key: next}})
	cfg := initiator.Config{Addr: "tcp://" + tt.addr, SubNQN: tt.subnqn, IOQueues: 1, Options: initiator.Options{HostNQN: testHost, DHCHAPSecret: old.String()}}
	if c2, err := initiator.Connect(context.Background(), cfg); err == nil {
		c2.Close()
		t.Fatal("a new connection authenticated with the old key")
	}
	before := tt.tgt.Stats.Authentications.Load()
	if err := c.Reauthenticate(context.Background(), next.String(), ""); err != nil {
		t.Fatalf("re-authenticate with the new key: %v", err)
	}
	if got, want := tt.tgt.Stats.Authentications.Load()-before, uint64(1+len(c.Queues())); got != want {
		t.Errorf("%d queues re-authenticated, want %d", got, want)
	}
	readWriteRandom(t, ns, 1)

	if err := c.Reauthenticate(context.Background(), old.String(), ""); err == nil {
		t.Fatal("re-authenticated with a key the target no longer has")
	}
	// The admin queue failed first (the I/O queues were not tried).
	if _, err := c.IdentifyController(context.Background()); err == nil || !strings.Contains(err.Error(), "uthentication") {
		t.Fatalf("admin command after a failed re-authentication: %v, want Authentication Required", err)
	}
	// A successful transaction gives it back.
	if err := c.Reauthenticate(context.Background(), next.String(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.IdentifyController(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestAuthShortReceive: a controller that answers Authentication Receive
// with just the message and the SUCCESS flag, short of AL (SPDK's target
// does), authenticates flashpath's host all the same.
func TestAuthShortReceive(t *testing.T) {
	key, ctrl := newSecret(t, dhchap.SHA256), newSecret(t, dhchap.SHA256)
	tt := startFake(t, func(c *tcppeer.Controller) {
		c.Auth = &dhchap.ControllerConfig{HostNQN: testHost, SubNQN: c.SubNQN, HostKey: key, CtrlKey: &ctrl}
	})
	c := connect(t, tt, func(c *initiator.Config) { c.DHCHAPSecret, c.DHCHAPCtrlSecret = key.String(), ctrl.String() })
	readWriteRandom(t, openNS(t, c, tt.nsid), 1)
}
