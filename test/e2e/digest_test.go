package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/tcppeer"
)

// TestBadDataDigest: a C2HData with a wrong data digest fails the
// connection, and the read reports the error.
func TestBadDataDigestFake(t *testing.T) {
	tt := startFake(t, func(f *tcppeer.Controller) { f.BadDDGST = true })
	cfg := initiator.Config{Addr: tt.addr, SubNQN: tt.subnqn, IOQueues: 1, Options: initiator.Options{DataDigest: true}}
	// Identify initiator.Controller already travels in a C2HData PDU: connecting fails.
	_, err := initiator.Connect(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "data digest") {
		t.Fatalf("Connect with corrupted data digests: %v, want a data digest error", err)
	}
}
