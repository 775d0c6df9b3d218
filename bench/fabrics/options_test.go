package fabrics

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestParseOptionsDurations: the reconnect settings take flashpath's one
// duration syntax with nvme-cli's meanings (ctrl_loss_tmo 0 gives up at
// once, -1 reconnects forever), and busy_poll=0 turns polling off.
func TestParseOptionsDurations(t *testing.T) {
	for _, tc := range []struct {
		opts                  map[string]string
		delay, loss, busyPoll time.Duration
	}{
		{map[string]string{}, 0, 0, 0},
		{map[string]string{"reconnect_delay": "2", "ctrl_loss_tmo": "600"}, 2 * time.Second, 600 * time.Second, 0},
		{map[string]string{"reconnect_delay": "5ms", "ctrl_loss_tmo": "1m"}, 5 * time.Millisecond, time.Minute, 0},
		{map[string]string{"ctrl_loss_tmo": "0"}, 0, -1, 0},
		{map[string]string{"ctrl_loss_tmo": "-1"}, 0, math.MaxInt64, 0},
		{map[string]string{"busy_poll": "0"}, 0, 0, -1},
		{map[string]string{"busy_poll": "20us"}, 0, 0, 20 * time.Microsecond},
		{map[string]string{"hipri": "1"}, 0, 0, hipriPoll},
	} {
		o, err := parseOptions(tc.opts)
		if err != nil || o.reconnectDelay != tc.delay || o.ctrlLossTmo != tc.loss || o.busyPoll != tc.busyPoll {
			t.Errorf("%v: delay %v, ctrl loss %v, busy poll %v, %v; want %v, %v, %v", tc.opts, o.reconnectDelay, o.ctrlLossTmo, o.busyPoll, err, tc.delay, tc.loss, tc.busyPoll)
		}
	}
	for opts, want := range map[string]string{
		"reconnect_delay=-1": "forever means nothing here",
		"ctrl_loss_tmo=-2":   "or -1 (forever",
		"busy_poll=soon":     "want seconds",
	} {
		k, v, _ := strings.Cut(opts, "=")
		if _, err := parseOptions(map[string]string{k: v}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", opts, err, want)
		}
	}
}

// TestParseOptionsDefaults: a job that names no engine option gets the
// defaults the package documents: polled=1, no digests, no hipri.
func TestParseOptionsDefaults(t *testing.T) {
	o, err := parseOptions(map[string]string{})
	if err != nil || !o.polled || o.hdrDigest || o.dataDigest || o.hipri {
		t.Fatalf("defaults: %+v, %v; want polled only", o, err)
	}
	for v, want := range map[string]bool{"0": false, "1": true, "": true} {
		o, err := parseOptions(map[string]string{"polled": v, "hdr_digest": v})
		if err != nil || o.polled != want || o.hdrDigest != want {
			t.Errorf("polled=%q hdr_digest=%q: %+v, %v; want both %v", v, v, o, err, want)
		}
	}
}
