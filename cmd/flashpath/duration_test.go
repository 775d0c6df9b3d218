package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/initiator/kernel/kerneltest"
	"github.com/flashpath/flashpath/internal/units"
)

// TestInitiatorCtrlLossTmo: the initiator's --ctrl-loss-tmo takes the one
// duration syntax and hands the kernel what nvme-cli would: -1 reconnects
// forever, 600, 600s and 10m are ten minutes.
func TestInitiatorCtrlLossTmo(t *testing.T) {
	old := kernelHost
	t.Cleanup(func() { kernelHost = old })
	for _, tc := range []struct {
		flag string
		want int // the kernel's ctrl_loss_tmo, seconds
	}{{"-1", -1}, {"600", 600}, {"600s", 600}, {"10m", 600}} {
		fs := kerneltest.New(t.TempDir())
		kernelHost = fs
		out, err := runCLI(t, nil, "initiator", "--connect", "tcp://127.0.0.1:4420/nqn.2026-11.io.example:x", "--once",
			"--ctrl-loss-tmo", tc.flag, "--reconnect-delay", "10s", "--interval", "600",
			"--hostnqn", "nqn.2014-08.org.nvmexpress:uuid:0f1e2d3c-4b5a-4697-8879-aabbccddee01", "--hostid", "0f1e2d3c-4b5a-4697-8879-aabbccddee01",
			"--log-level", "warn")
		if err != nil || len(fs.Params) != 1 {
			t.Fatalf("--ctrl-loss-tmo %s: %v\n%s", tc.flag, err, out)
		}
		if p := fs.Params[0]; p.CtrlLossTmo != tc.want || p.ReconnectDelay != 10 {
			t.Errorf("--ctrl-loss-tmo %s: the kernel got ctrl_loss_tmo=%d reconnect_delay=%d, want %d and 10", tc.flag, p.CtrlLossTmo, p.ReconnectDelay, tc.want)
		}
	}
	for _, tc := range []struct{ flag, val, want string }{
		{"--ctrl-loss-tmo", "forever", `duration "forever": want seconds (600), a number and a unit (600s, 10m`},
		{"--ctrl-loss-tmo", "-2", `duration "-2"`},
		{"--ctrl-loss-tmo", "1.5", "--ctrl-loss-tmo 1.5s: want whole seconds"},
		{"--reconnect-delay", "-1", "--reconnect-delay -1: want a duration of 0 or more"},
		{"--interval", "-1", "--interval -1: want a duration of 0 or more"},
	} {
		out, err := runCLI(t, nil, "initiator", "--connect", "tcp://127.0.0.1:4420/nqn.2026-11.io.example:x", "--once", tc.flag, tc.val)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: %v (%s), want an error with %q", tc.flag, tc.val, err, out, tc.want)
		}
	}
}

// TestIOCtrlLossTmo: flashpath io's --ctrl-loss-tmo means what nvme-cli's
// does: -1 reconnects forever, 0 gives up at once, 600 is ten minutes.
func TestIOCtrlLossTmo(t *testing.T) {
	for _, tc := range []struct {
		flag string
		want time.Duration // initiator.Config.CtrlLossTimeout
	}{{"-1", math.MaxInt64}, {"0", -1}, {"600", 10 * time.Minute}, {"10m", 10 * time.Minute}} {
		cmd := newIOCmd()
		if err := cmd.PersistentFlags().Parse([]string{"--ctrl-loss-tmo", tc.flag}); err != nil {
			t.Fatalf("--ctrl-loss-tmo %s: %v", tc.flag, err)
		}
		d := *cmd.PersistentFlags().Lookup("ctrl-loss-tmo").Value.(*units.Duration)
		if got := initiator.CtrlLossFromNVMeCLI(d.Duration()); got != tc.want {
			t.Errorf("--ctrl-loss-tmo %s: CtrlLossTimeout %v, want %v", tc.flag, got, tc.want)
		}
	}
}

// TestDurationFlagsOneSyntax: every duration flag of every command is a
// units.Duration, which takes seconds, a number with a unit and -1, and
// shows its default in that syntax.
func TestDurationFlagsOneSyntax(t *testing.T) {
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		visit := func(f *pflag.Flag) {
			if f.Value.Type() != "duration" {
				return
			}
			n++
			if _, ok := f.Value.(*units.Duration); !ok {
				t.Errorf("%s --%s is a %T, not a units.Duration (durationVar)", c.CommandPath(), f.Name, f.Value)
				return
			}
			if _, err := units.ParseDuration(f.DefValue); err != nil {
				t.Errorf("%s --%s: default %q does not read back: %v", c.CommandPath(), f.Name, f.DefValue, err)
			}
		}
		c.LocalFlags().VisitAll(visit)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	if n < 9 {
		t.Fatalf("%d duration flags, want the 9 or more of target, initiator, io, rpc and bench", n)
	}
}
