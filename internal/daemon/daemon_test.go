package daemon

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/units"
)

func TestNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	if err := Notify("READY=1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
}

// TestParseConfigDurationField: a duration a file gets wrong is named by
// its field's path of JSON keys (embedded structs left out).
func TestParseConfigDurationField(t *testing.T) {
	type Options struct {
		Tmo *units.Duration `json:"ctrl_loss_tmo"`
	}
	type entry struct {
		Options
	}
	type config struct {
		Connect  []entry        `json:"connect"`
		Interval units.Duration `json:"interval"`
	}
	for in, want := range map[string]string{
		"connect: [{ctrl_loss_tmo: -2}]\n": `connect.ctrl_loss_tmo: duration "-2": want seconds (600)`,
		"interval: soon\n":                 `interval: duration "soon": want seconds (600)`,
	} {
		_, err := ParseConfig([]byte(in), func(*config) error { return nil })
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: %v, want %q...", in, err, want)
		}
	}
	cfg, err := ParseConfig([]byte("connect: [{ctrl_loss_tmo: -1}, {ctrl_loss_tmo: 600}]\ninterval: 10m\n"), func(*config) error { return nil })
	if err != nil || *cfg.Connect[0].Tmo != units.Forever || cfg.Connect[1].Tmo.Duration() != 10*time.Minute || cfg.Interval.Duration() != 10*time.Minute {
		t.Fatalf("%+v, %v", cfg, err)
	}
}

// TestParseConfigUnknownFieldLine: an unknown key is named with its line
// in the YAML (the JSON decoder underneath knows none), in block and flow
// style, quoted or not; a key that only appears inside a value is not
// taken for it. A known key a few edits away is suggested: of any depth,
// of embedded structs, never a duration's insides.
func TestParseConfigUnknownFieldLine(t *testing.T) {
	type tmo struct {
		Tmo *units.Duration `json:"ctrl_loss_tmo"`
	}
	type sub struct {
		NQN string `json:"nqn"`
		tmo
	}
	type config struct {
		Listeners  []string       `json:"listeners"`
		Subsystems []sub          `json:"subsystems"`
		Interval   units.Duration `json:"interval"`
	}
	for in, want := range map[string]string{
		"listeners: [tcp://x]\nbogus_field: 1\n":                            `line 2: unknown field "bogus_field"`,
		"listeners: [tcp://x]\nsubsystems:\n  - nqn: a\n    nqm: b\n":       `line 4: unknown field "nqm"; did you mean nqn?`,
		"subsystems:\n  - {nqn: a, \"nqm\": b}\n":                           `line 2: unknown field "nqm"; did you mean nqn?`,
		"listeners: [\"nqm: x\"]\nsubsystems: [{nqn: a}, {nqm: b}]\n":       `line 2: unknown field "nqm"; did you mean nqn?`,
		"{\"listeners\": [], \"subsystems\": [{\"nqn\": \"a\", \"x\": 1}]}": `line 1: unknown field "x"`,
		"listener: [tcp://x]\n":                                             `line 1: unknown field "listener"; did you mean listeners?`,
		"subsystems: [{nqn: a, ctrl_los_tmo: 5}]\n":                         `line 1: unknown field "ctrl_los_tmo"; did you mean ctrl_loss_tmo?`,
		"subsystems: [{nqn: a, listeners: []}]\n":                           `line 1: unknown field "listeners"`,
		"intervall: 1s\n": `line 1: unknown field "intervall"; did you mean interval?`,
	} {
		_, err := ParseConfig([]byte(in), func(*config) error { return nil })
		if err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}
