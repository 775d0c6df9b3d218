package server

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/units"
)

func TestResolveNSIDs(t *testing.T) {
	cfg := &Config{
		Listeners: []string{"tcp://127.0.0.1:0"},
		Subsystems: []SubsystemConfig{{NQN: reloadNQN, Namespaces: []NamespaceConfig{
			{Backend: "mem:1MiB"}, {NSID: 1, Backend: "mem:2MiB"}, {Backend: "mem:3MiB"}}}},
	}
	got := resolveNSIDs(cfg)
	var ids []uint32
	for _, nc := range got.Subsystems[0].Namespaces {
		ids = append(ids, nc.NSID)
	}
	if !slices.Equal(ids, []uint32{2, 1, 3}) {
		t.Fatalf("NSIDs %v, want [2 1 3]", ids)
	}
	if cfg.Subsystems[0].Namespaces[0].NSID != 0 {
		t.Fatal("resolveNSIDs changed its argument")
	}
}

const (
	reloadNQN  = "nqn.2026-11.io.flashpath:reload"
	reloadNQN2 = "nqn.2026-11.io.flashpath:reload2"
	hostA      = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000000a"
	hostB      = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-00000000000b"
)

// TestPlanReload: the difference between the running configuration and a
// new one, computed without touching either: a subsystem dropped, one
// added, and in the one kept a namespace unchanged, two replaced (one
// through an NSID left 0), one removed, one new, new hosts, and a serial
// and listeners that need a restart.
func TestPlanReload(t *testing.T) {
	const added = "nqn.2026-11.io.flashpath:reload3"
	running := func() *Config {
		return resolveNSIDs(&Config{
			Listeners: []string{"tcp://127.0.0.1:4420"},
			Subsystems: []SubsystemConfig{
				{NQN: reloadNQN, Serial: "s1", Namespaces: []NamespaceConfig{
					{NSID: 1, Backend: "mem:1MiB"}, {NSID: 2, Backend: "mem:2MiB"}, {NSID: 3, Backend: "null:1GiB"}, {NSID: 4, Backend: "mem:3MiB"}}},
				{NQN: reloadNQN2, Namespaces: []NamespaceConfig{{Backend: "mem:1MiB"}}},
			},
		})
	}
	config := func() *Config {
		return &Config{
			Listeners: []string{"tcp://127.0.0.1:4421"},
			BusyPoll:  new(units.Duration(0)),
			Sendfile:  new(false),
			Subsystems: []SubsystemConfig{
				{NQN: added, Namespaces: []NamespaceConfig{{Backend: "mem:1MiB"}, {Backend: "mem:2MiB"}}},
				{NQN: reloadNQN, Serial: "s2", AllowedHosts: []HostConfig{{NQN: hostB}, {NQN: hostA}}, Namespaces: []NamespaceConfig{
					{NSID: 1, Backend: "mem:1MiB"}, {NSID: 2, Backend: "mem:4MiB"}, {Backend: "mem:8MiB"}, {NSID: 5, Backend: "mem:1MiB"}}},
			},
		}
	}
	cur, cfg := running(), config()

	p := planReload(cur, cfg)
	want := []string{
		"restart reload: listeners changed: restart to apply [tcp://127.0.0.1:4420] [tcp://127.0.0.1:4421]",
		"restart reload: busy_poll changed: restart to apply 50µs 0s",
		"restart reload: sendfile changed: restart to apply true false",
		"remove " + reloadNQN2,
		"add " + added + " open 1 open 2",
		"keep " + reloadNQN + " restart hosts replace 2 mem:2MiB>mem:4MiB replace 3 null:1GiB>mem:8MiB remove 4 open 5",
	}
	if got := describePlan(p); !slices.Equal(got, want) {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Equal(p.next.Listeners, cur.Listeners) || p.next.Subsystems[1].Serial != "s1" {
		t.Errorf("next keeps listeners %v, serial %q; want the running %v, s1", p.next.Listeners, p.next.Subsystems[1].Serial, cur.Listeners)
	}
	if !reflect.DeepEqual(cur, running()) || !reflect.DeepEqual(cfg, config()) {
		t.Error("planReload changed its arguments")
	}

	// The same configuration again: nothing to do.
	if got := describePlan(planReload(p.next, p.next)); !slices.Equal(got, []string{"keep " + added, "keep " + reloadNQN}) {
		t.Errorf("plan for no change: %q", got)
	}
}

// describePlan renders a reload plan one line per step.
func describePlan(p *reloadPlan) []string {
	var out []string
	for _, c := range p.restart {
		out = append(out, fmt.Sprintf("restart %s %v %v", c.msg, c.running, c.config))
	}
	for _, nqn := range p.removed {
		out = append(out, "remove "+nqn)
	}
	for _, sp := range p.subsystems {
		s := "keep " + sp.sc.NQN
		if sp.added {
			s = "add " + sp.sc.NQN
		}
		if sp.restart {
			s += " restart"
		}
		if sp.hosts {
			s += " hosts"
		}
		for _, c := range sp.changed {
			if c.new == nil {
				s += fmt.Sprintf(" remove %d", c.old.NSID)
			} else {
				s += fmt.Sprintf(" replace %d %s>%s", c.old.NSID, c.old.Backend, c.new.Backend)
			}
		}
		for _, nc := range sp.opened {
			s += fmt.Sprintf(" open %d", nc.NSID)
		}
		out = append(out, s)
	}
	return out
}
