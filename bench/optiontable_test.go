package bench

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestEveryFioOptionIsClassified: each option of fio's list has a row
// saying what flashpath does with it, and a note for anything short of
// fio's semantics.
func TestEveryFioOptionIsClassified(t *testing.T) {
	fio := fioOptions()
	if len(fio) < 200 {
		t.Fatalf("fio_options.tsv has %d options; regenerate it with testdata/fio-options.sh", len(fio))
	}
	for _, f := range fio {
		if f.engine != "" {
			if _, ok := engineOptionNotes[f.name]; !ok && len(enginesTaking(f.name)) == 0 {
				t.Errorf("%s (engine %s): neither one of flashpath's engines' options nor in engineOptionNotes", f.name, f.engine)
			}
			continue
		}
		s := findSpec(f.name)
		if s == nil {
			t.Errorf("fio option %s has no row in the option table", f.name)
			continue
		}
		if s.support != Implemented && s.help == "" {
			t.Errorf("%s is %s without a reason", f.name, s.support)
		}
		for _, a := range f.aliases {
			if findSpec(a) != s {
				t.Errorf("fio's alias %s of %s does not find its row", a, f.name)
			}
		}
	}
}

// TestIgnoredAndRefusedOptions: an ignored option is accepted (bare when
// boolean, else with fio's default) and changes nothing; a refused one
// stops the job with ErrRefusedOption and its reason, unless given fio's
// default.
func TestIgnoredAndRefusedOptions(t *testing.T) {
	base := DefaultJob()
	base.IOEngine = "null"
	def := map[string]string{"clocksource": "clock_gettime"} // fio's default depends on the machine
	for _, f := range fioOptions() {
		if f.def != "" {
			def[f.name] = f.def
		}
	}
	for _, s := range allSpecs() {
		switch {
		case s.support == Ignored:
			v := def[s.name]
			if s.bool_ {
				v = ""
			}
			if v == "" && !s.bool_ {
				v = "1"
			}
			j := base
			err := j.apply(Option{s.name, v})
			if err != nil {
				t.Errorf("ignored %s=%s: %v", s.name, v, err)
			}
		case s.support == Refused:
			j := base
			err := j.apply(Option{s.name, "12345"})
			if !errors.Is(err, ErrRefusedOption) || !strings.Contains(err.Error(), s.help) {
				t.Errorf("refused %s=12345: error %v, want ErrRefusedOption with %q", s.name, err, s.help)
			}
			// A job file that spells out fio's default asks for nothing
			// else than one that leaves it out.
			if d := def[s.name]; d != "" {
				j := base
				if err := j.apply(Option{s.name, d}); err != nil {
					t.Errorf("refused %s: its fio default %q: %v", s.name, d, err)
				}
			}
		}
	}
}

func TestCmdHelp(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCmdHelp(&b, "blocksize"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"bs: Block size unit", "alias: blocksize", "default: 4096", "flashpath: implemented"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("--cmdhelp=blocksize lacks %q:\n%s", s, b.String())
		}
	}
	b.Reset()
	if err := WriteCmdHelp(&b, "zonemode"); err != nil || !strings.Contains(b.String(), "flashpath: refused: zoned") {
		t.Errorf("--cmdhelp=zonemode: %v\n%s", err, b.String())
	}
	if err := WriteCmdHelp(&b, "bsx"); err == nil || !strings.Contains(err.Error(), "did you mean bs") {
		t.Errorf("--cmdhelp=bsx: %v", err)
	}
	b.Reset()
	WriteCmdHelpAll(&b)
	if n := strings.Count(b.String(), "\n"); n < len(fioOptions())-30 {
		t.Errorf("--cmdhelp lists %d options", n)
	}
}

func TestEngineHelp(t *testing.T) {
	var b bytes.Buffer
	if err := WriteEngineHelp(&b, "null"); err != nil || !strings.Contains(b.String(), "has no options") {
		t.Errorf("--enghelp=null: %v %q", err, b.String())
	}
	if err := WriteEngineHelp(&b, "nosuch"); err == nil {
		t.Error("--enghelp=nosuch: no error")
	}
}
