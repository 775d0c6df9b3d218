package server

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestMerge3: the keyed three-way merge, on items "key=value": theirs
// wins where it changed an item, ours stays everywhere else.
func TestMerge3(t *testing.T) {
	key := func(s string) string { k, _, _ := strings.Cut(s, "="); return k }
	equal := func(a, b string) bool { return a == b }
	list := func(s string) []string { return strings.Fields(s) }
	for _, tc := range []struct {
		name                     string
		base, ours, theirs, want string
	}{
		{"nothing changed", "a=1 b=1", "a=1 b=1", "a=1 b=1", "a=1 b=1"},
		{"theirs alone: theirs exactly", "a=1 b=1 c=1", "a=1 b=1 c=1", "d=1 c=2 a=1", "d=1 c=2 a=1"},
		{"ours alone: ours", "a=1 b=1 c=1", "a=2 c=1 d=1", "a=1 b=1 c=1", "a=2 c=1 d=1"},
		{"both added different keys", "a=1", "a=1 o=1", "a=1 t=1", "a=1 t=1 o=1"},
		{"both added the same key: theirs", "a=1", "a=1 k=o", "a=1 k=t", "a=1 k=t"},
		{"theirs changed what ours changed: theirs", "a=1", "a=o", "a=t", "a=t"},
		{"theirs changed what ours removed: theirs", "a=1 b=1", "b=1", "a=2 b=1", "a=2 b=1"},
		{"theirs removed what ours changed: gone", "a=1 b=1", "a=2 b=1", "b=1", "b=1"},
		{"ours removed what theirs kept: gone", "a=1 b=1", "b=1", "a=1 b=1 c=1", "b=1 c=1"},
		{"theirs removed what ours removed", "a=1 b=1", "b=1", "b=1", "b=1"},
		{"empty base", "", "o=1", "t=1", "t=1 o=1"},
		{"everything removed from theirs", "a=1 b=1", "a=1 b=2 o=1", "", "o=1"},
		{"ours' order kept for ours' additions", "a=1", "a=1 z=1 y=1", "b=1 a=1", "b=1 a=1 z=1 y=1"},
		{"duplicates in ours once", "a=1", "a=1 o=1 o=2", "a=1", "a=1 o=1"},
	} {
		got := merge3(list(tc.base), list(tc.ours), list(tc.theirs), key, equal, nil)
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: merge3(%q, %q, %q) = %q, want %q", tc.name, tc.base, tc.ours, tc.theirs, strings.Join(got, " "), tc.want)
		}
	}

	// both merges an item theirs changed and ours has; it is not called
	// for one theirs added, nor where ours removed it.
	var calls []string
	both := func(b, o, t string) string { calls = append(calls, b+","+o+","+t); return key(t) + "=merged" }
	got := merge3(list("a=1 b=1 c=1"), list("a=2 c=1 n=o"), list("a=3 b=3 c=1 n=t"), key, equal, both)
	if want := "a=merged b=3 c=1 n=t"; strings.Join(got, " ") != want || !slices.Equal(calls, []string{"a=1,a=2,a=3"}) {
		t.Errorf("with both: %q, calls %q; want %q, one call for a", got, calls, want)
	}

	// Pure: the arguments stay as they were.
	base, ours, theirs := list("a=1 b=1"), list("a=2"), list("a=1 b=2 c=1")
	merge3(base, ours, theirs, key, equal, nil)
	if !slices.Equal(base, list("a=1 b=1")) || !slices.Equal(ours, list("a=2")) || !slices.Equal(theirs, list("a=1 b=2 c=1")) {
		t.Error("merge3 changed its arguments")
	}
	if got := merge3(nil, nil, []string{}, key, equal, nil); got == nil {
		t.Error("an empty theirs came back nil")
	}
}

// TestMergeSubsystem: a subsystem the file changed, merged field by field
// with the one running.
func TestMergeSubsystem(t *testing.T) {
	ns := func(nsid uint32, be string) NamespaceConfig { return NamespaceConfig{NSID: nsid, Backend: be} }
	hosts := func(nqns ...string) []HostConfig {
		var out []HostConfig
		for _, n := range nqns {
			out = append(out, HostConfig{NQN: n})
		}
		return out
	}
	base := SubsystemConfig{NQN: reloadNQN, Serial: "s1", Model: "m1", AllowedHosts: hosts(hostA),
		Namespaces: []NamespaceConfig{ns(1, "mem:1MiB"), ns(2, "mem:2MiB")}}
	for _, tc := range []struct {
		name         string
		ours, theirs func(*SubsystemConfig)
		want         func(*SubsystemConfig)
	}{
		{"serial changed in the file, model kept as running",
			func(sc *SubsystemConfig) { sc.Model = "rpc" },
			func(sc *SubsystemConfig) { sc.Serial = "s2" },
			func(sc *SubsystemConfig) { sc.Serial, sc.Model = "s2", "rpc" }},
		{"namespaces merged by NSID",
			func(sc *SubsystemConfig) { sc.Namespaces = []NamespaceConfig{ns(2, "mem:2MiB"), ns(3, "null:1GiB")} },
			func(sc *SubsystemConfig) {
				sc.Namespaces = []NamespaceConfig{ns(1, "mem:1MiB"), ns(2, "mem:2MiB"), ns(4, "mem:4MiB")}
			},
			func(sc *SubsystemConfig) {
				sc.Namespaces = []NamespaceConfig{ns(2, "mem:2MiB"), ns(4, "mem:4MiB"), ns(3, "null:1GiB")}
			}},
		{"a namespace both changed: the file's",
			func(sc *SubsystemConfig) { sc.Namespaces[1].UUID = "6b0f3a2e-5d1c-4e8f-9a7b-1c2d3e4f5a6b" },
			func(sc *SubsystemConfig) { sc.Namespaces[1].Backend = "mem:8MiB" },
			func(sc *SubsystemConfig) { sc.Namespaces[1].Backend = "mem:8MiB" }},
		{"hosts merged by NQN",
			func(sc *SubsystemConfig) { sc.AllowedHosts = hosts(hostA, hostB) },
			func(sc *SubsystemConfig) { sc.AllowedHosts = nil; sc.AllowAnyHost = new(false); sc.Serial = "s2" },
			func(sc *SubsystemConfig) {
				sc.AllowedHosts = hosts(hostB)
				sc.AllowAnyHost = new(false)
				sc.Serial = "s2"
			}},
		{"the file opens to any host: its list and flag",
			func(sc *SubsystemConfig) { sc.AllowedHosts = hosts(hostA, hostB) },
			func(sc *SubsystemConfig) { sc.AllowedHosts = nil; sc.AllowAnyHost = new(true) },
			func(sc *SubsystemConfig) { sc.AllowedHosts = nil; sc.AllowAnyHost = new(true) }},
		{"the file empties its list (any host): its list and flag",
			func(sc *SubsystemConfig) { sc.AllowedHosts = hosts(hostA, hostB) },
			func(sc *SubsystemConfig) { sc.AllowedHosts = nil },
			func(sc *SubsystemConfig) { sc.AllowedHosts = nil }},
		{"the file adds a host where any host is allowed at run time: the file's list",
			func(sc *SubsystemConfig) { sc.AllowedHosts = nil; sc.AllowAnyHost = new(true) },
			func(sc *SubsystemConfig) { sc.AllowedHosts = hosts(hostA, hostB) },
			func(sc *SubsystemConfig) { sc.AllowedHosts = hosts(hostA, hostB) }},
	} {
		ours, theirs, want := clone(base), clone(base), clone(base)
		tc.ours(&ours)
		tc.theirs(&theirs)
		tc.want(&want)
		if got := mergeSubsystem(base, ours, theirs); !equalSubsystem(got, want) || !reflect.DeepEqual(got.Namespaces, want.Namespaces) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, want)
		}
	}
}

func clone(sc SubsystemConfig) SubsystemConfig {
	sc.AllowedHosts = slices.Clone(sc.AllowedHosts)
	sc.Namespaces = slices.Clone(sc.Namespaces)
	return sc
}

// TestMergeReload: with nothing changed at run time a reload runs the
// file exactly, as before the merge; changes made at run time stay where
// the file did not change the same thing.
func TestMergeReload(t *testing.T) {
	const rpcNQN = "nqn.2026-11.io.flashpath:rpc"
	base := resolveNSIDs(&Config{
		Listeners: []string{"tcp://127.0.0.1:4420"},
		Subsystems: []SubsystemConfig{
			{NQN: reloadNQN, Serial: "s1", Namespaces: []NamespaceConfig{{Backend: "mem:1MiB"}, {Backend: "mem:2MiB"}}},
			{NQN: reloadNQN2, Namespaces: []NamespaceConfig{{Backend: "mem:1MiB"}}},
		},
	})
	file := &Config{
		Listeners: []string{"tcp://127.0.0.1:4421"},
		Subsystems: []SubsystemConfig{
			{NQN: "nqn.2026-11.io.flashpath:reload3", Namespaces: []NamespaceConfig{{Backend: "mem:1MiB"}}},
			{NQN: reloadNQN, Serial: "s2", AllowedHosts: []HostConfig{{NQN: hostA}}, Namespaces: []NamespaceConfig{{Backend: "mem:1MiB"}, {Backend: "mem:4MiB"}, {Backend: "mem:8MiB"}}},
		},
	}
	theirs := resolveFile(file, base, base, base)
	if got := mergeReload(base, base, theirs); !reflect.DeepEqual(got, resolveNSIDs(file)) {
		t.Errorf("no run-time change: merged\n%+v\nwant the file\n%+v", got, resolveNSIDs(file))
	}

	// At run time: a listener, a subsystem, a namespace (NSID 3) and a
	// host are added to the file's, NSID 1 removed and reloadNQN2 deleted.
	ours := resolveNSIDs(base)
	ours.Listeners = append(ours.Listeners, "tcp://127.0.0.1:4430")
	ours.Subsystems = append(ours.Subsystems[:1], SubsystemConfig{NQN: rpcNQN, Namespaces: []NamespaceConfig{{NSID: 1, Backend: "null:1GiB"}}})
	sc := &ours.Subsystems[0]
	sc.AllowAnyHost, sc.AllowedHosts = new(false), []HostConfig{{NQN: hostB}}
	sc.Namespaces = []NamespaceConfig{{NSID: 2, Backend: "mem:2MiB"}, {NSID: 3, Backend: "null:1GiB"}}

	// The same file again: what runs stays.
	if got := mergeReload(base, ours, resolveFile(base, base, base, ours)); !reflect.DeepEqual(got, ours) {
		t.Errorf("same file: merged\n%+v\nwant what runs\n%+v", got, ours)
	}

	// The file adds a namespace without NSID (not NSID 3: it runs) and
	// changes reloadNQN2 (deleted at run time: it comes back as the file
	// has it).
	file = resolveNSIDs(base)
	file.Subsystems[0].Namespaces = []NamespaceConfig{{Backend: "mem:1MiB"}, {Backend: "mem:2MiB"}, {Backend: "mem:16MiB"}}
	file.Subsystems[1].Serial = "new"
	got := mergeReload(base, ours, resolveFile(file, base, base, ours))
	want := []string{
		"tcp://127.0.0.1:4420 tcp://127.0.0.1:4430",
		reloadNQN + " s1 false " + hostB + " 2:mem:2MiB 4:mem:16MiB 3:null:1GiB",
		reloadNQN2 + " new <nil> 1:mem:1MiB",
		rpcNQN + " <nil> 1:null:1GiB",
	}
	if d := describeConfig(got); !slices.Equal(d, want) {
		t.Errorf("merged:\n%s\nwant:\n%s", strings.Join(d, "\n"), strings.Join(want, "\n"))
	}

	// A listener added at run time is no change of the file's; a change
	// of the file's needs a restart, and each reload says so again.
	restarts := func(base, ours, file *Config) (n int) {
		for _, c := range planReload(ours, mergeReload(base, ours, file)).restart {
			if strings.Contains(c.msg, "listeners changed") {
				n++
			}
		}
		return n
	}
	if n := restarts(base, ours, base); n != 0 {
		t.Errorf("the same file: %d listener warnings, want none", n)
	}
	file = resolveNSIDs(base)
	file.Listeners = []string{"tcp://127.0.0.1:4421"}
	if n := restarts(base, ours, file); n != 1 {
		t.Errorf("the file's listener changed: %d warnings, want 1", n)
	}
	if n := restarts(fileBase(base, file), ours, file); n != 1 {
		t.Errorf("the same change reloaded again: %d warnings, want 1", n)
	}
}

// describeConfig renders the listeners, then one line per subsystem:
// NQN, serial, allow_any_host, hosts, NSID:backend.
func describeConfig(c *Config) []string {
	out := []string{strings.Join(c.Listeners, " ")}
	for _, sc := range c.Subsystems {
		s := sc.NQN
		if sc.Serial != "" {
			s += " " + sc.Serial
		}
		if sc.AllowAnyHost != nil {
			s += fmt.Sprint(" ", *sc.AllowAnyHost)
		} else {
			s += " <nil>"
		}
		for _, h := range sc.AllowedHosts {
			s += " " + h.NQN
		}
		for _, nc := range sc.Namespaces {
			s += fmt.Sprintf(" %d:%s", nc.NSID, nc.Backend)
		}
		out = append(out, s)
	}
	return out
}

// TestReloadKeepsUpdates: a target started from a file, changed at run
// time (as the SPDK JSON-RPC does) and then reloaded keeps the run-time
// changes the file did not touch, applies the file's, and where the file
// changes what was changed at run time, runs the file's version.
func TestReloadKeepsUpdates(t *testing.T) {
	const (
		rpcNQN      = "nqn.2026-11.io.flashpath:rpc"
		rpcListener = "127.0.0.1:0" // the file's is tcp://127.0.0.1:0
	)
	file := func() *Config {
		return &Config{
			Listeners: []string{"tcp://127.0.0.1:0"},
			Subsystems: []SubsystemConfig{
				{NQN: reloadNQN, AllowedHosts: []HostConfig{{NQN: hostA}}, Namespaces: []NamespaceConfig{{Backend: "mem:1MiB"}, {Backend: "mem:2MiB"}}},
				{NQN: reloadNQN2, Serial: "s2", Namespaces: []NamespaceConfig{{NSID: 1, Backend: "mem:1MiB"}}},
			},
		}
	}
	srv, err := Start(file(), Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	update := func(change func(*Config)) {
		t.Helper()
		if err := srv.Update(func(c *Config) error { change(c); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	// namespaces describes the namespaces running in nqn, "NSID:size".
	namespaces := func(nqn string) string {
		ss := srv.Target.Subsystem(nqn)
		if ss == nil {
			return "no subsystem"
		}
		var out []string
		for _, ns := range ss.Namespaces() {
			out = append(out, fmt.Sprintf("%d:%d", ns.ID, ns.Backend.Size()))
		}
		return strings.Join(out, " ")
	}
	hosts := func(nqn string) string {
		sc := findSubsys(srv.Applied(), nqn)
		if sc == nil {
			return "no subsystem"
		}
		anyHost, list, _ := hostsOf(*sc)
		return fmt.Sprint(anyHost, list)
	}
	check := func(step string, want map[string]string) {
		t.Helper()
		for what, w := range want {
			var got string
			switch nqn, kind, _ := strings.Cut(what, " "); kind {
			case "namespaces":
				got = namespaces(nqn)
			case "hosts":
				got = hosts(nqn)
			}
			if got != w {
				t.Errorf("%s: %s: %s, want %s", step, what, got, w)
			}
		}
		if !slices.Contains(srv.Applied().Listeners, rpcListener) || srv.ListenerAddr(rpcListener) == "" {
			t.Errorf("%s: the listener added at run time is gone: %v", step, srv.Applied().Listeners)
		}
	}

	// At run time: a listener and a subsystem, a namespace (NSID 3) and a
	// host in the file's; then the file's NSID 1 goes.
	update(func(c *Config) {
		c.Listeners = append(c.Listeners, rpcListener)
		c.Subsystems = append(c.Subsystems, SubsystemConfig{NQN: rpcNQN, Namespaces: []NamespaceConfig{{Backend: "null:1GiB"}}})
	})
	update(func(c *Config) {
		sc := findSubsys(c, reloadNQN)
		sc.Namespaces = append(sc.Namespaces, NamespaceConfig{Backend: "null:1GiB"})
		sc.AllowedHosts = append(sc.AllowedHosts, HostConfig{NQN: hostB})
	})
	update(func(c *Config) {
		sc := findSubsys(c, reloadNQN)
		sc.Namespaces = slices.DeleteFunc(sc.Namespaces, func(nc NamespaceConfig) bool { return nc.NSID == 1 })
	})
	updated := map[string]string{
		rpcNQN + " namespaces":    "1:1073741824",
		reloadNQN + " namespaces": "2:2097152 3:1073741824",
		reloadNQN + " hosts":      fmt.Sprint(false, []string{hostA, hostB}),
	}
	check("updated", updated)

	// The file adds a namespace to the same subsystem (without NSID: it
	// takes 4, not the 3 added at run time), restricts the other one to
	// host A and changes its serial (which needs a restart).
	cfg := file()
	cfg.Subsystems[0].Namespaces = append(cfg.Subsystems[0].Namespaces, NamespaceConfig{Backend: "mem:4MiB"})
	cfg.Subsystems[1].AllowedHosts = []HostConfig{{NQN: hostA}}
	cfg.Subsystems[1].Serial = "s2b"
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	reloaded := map[string]string{
		rpcNQN + " namespaces":     "1:1073741824",
		reloadNQN + " namespaces":  "2:2097152 3:1073741824 4:4194304",
		reloadNQN + " hosts":       fmt.Sprint(false, []string{hostA, hostB}),
		reloadNQN2 + " namespaces": "1:1048576",
		reloadNQN2 + " hosts":      fmt.Sprint(false, []string{hostA}),
	}
	check("reloaded", reloaded)
	if s := findSubsys(srv.Applied(), reloadNQN2).Serial; s != "s2" {
		t.Errorf("serial %q changed without a restart", s)
	}
	before := srv.Applied()
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if after := srv.Applied(); !reflect.DeepEqual(after, before) {
		t.Errorf("the same file again changed\n%+v\nto\n%+v", before, after)
	}
	check("reloaded again", reloaded)

	// The file changes what changed at run time: NSID 1 (removed at run
	// time) gets a new backend, NSID 3 (added at run time) one of the
	// file's, and the file adds the subsystem added at run time. The
	// file's versions run; the hosts, which the file left, stay.
	cfg = file()
	cfg.Subsystems[0].Namespaces = []NamespaceConfig{{Backend: "mem:8MiB"}, {Backend: "mem:2MiB"}, {NSID: 3, Backend: "mem:3MiB"}, {Backend: "mem:4MiB"}}
	cfg.Subsystems[1].AllowedHosts = []HostConfig{{NQN: hostA}}
	cfg.Subsystems = append(cfg.Subsystems, SubsystemConfig{NQN: rpcNQN, Namespaces: []NamespaceConfig{{Backend: "mem:1MiB"}}})
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	check("the file's versions", map[string]string{
		rpcNQN + " namespaces":    "1:1048576",
		reloadNQN + " namespaces": "1:8388608 2:2097152 3:3145728 4:4194304",
		reloadNQN + " hosts":      fmt.Sprint(false, []string{hostA, hostB}),
		reloadNQN2 + " hosts":     fmt.Sprint(false, []string{hostA}),
	})

	// The file removes the subsystem it now shares with the run time: it
	// goes; the run-time listener still stays.
	cfg.Subsystems = cfg.Subsystems[:2]
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	check("removed", map[string]string{rpcNQN + " namespaces": "no subsystem"})
}

// TestResolveFile: namespaces a file leaves without NSID are numbered as
// resolveNSIDs does, but skip the NSIDs added at run time, and keep what
// they got when that skipping numbered them otherwise.
func TestResolveFile(t *testing.T) {
	type step struct {
		name    string
		file    []string // backends, NSIDs left 0; "N=backend" gives NSID N
		running []uint32 // the NSIDs running before the reload
		want    []uint32
	}
	steps := []step{
		{"as resolveNSIDs", []string{"a", "b"}, nil, []uint32{1, 2}},
		{"3 added at run time: d skips it", []string{"a", "b", "d"}, []uint32{1, 2, 3}, []uint32{1, 2, 4}},
		{"3 removed at run time, the file unchanged: d keeps 4", []string{"a", "b", "d"}, []uint32{1, 2, 4}, []uint32{1, 2, 4}},
		{"the file adds e: the lowest free; d keeps 4", []string{"a", "b", "d", "e"}, []uint32{1, 2, 4}, []uint32{1, 2, 4, 3}},
		{"1 removed at run time, the file changes a: 1 again", []string{"a2", "b", "d", "e"}, []uint32{2, 3, 4}, []uint32{1, 2, 4, 3}},
		{"the file names 4: d moves", []string{"a2", "b", "d", "e", "4=f"}, []uint32{1, 2, 3, 4}, []uint32{1, 2, 5, 3, 4}},
	}
	parse := func(file []string) *Config {
		sc := SubsystemConfig{NQN: reloadNQN}
		for _, f := range file {
			nc := NamespaceConfig{Backend: f}
			if id, be, ok := strings.Cut(f, "="); ok {
				fmt.Sscan(id, &nc.NSID)
				nc.Backend = be
			}
			sc.Namespaces = append(sc.Namespaces, nc)
		}
		return &Config{Listeners: []string{"tcp://127.0.0.1:0"}, Subsystems: []SubsystemConfig{sc}}
	}
	prev := parse(steps[0].file)
	base := resolveNSIDs(prev)
	for _, st := range steps {
		ours := resolveNSIDs(base)
		ours.Subsystems[0].Namespaces = nil
		for _, id := range st.running {
			ours.Subsystems[0].Namespaces = append(ours.Subsystems[0].Namespaces, NamespaceConfig{NSID: id, Backend: fmt.Sprint("running", id)})
		}
		cfg := parse(st.file)
		got := resolveFile(cfg, prev, base, ours)
		var ids []uint32
		for _, nc := range got.Subsystems[0].Namespaces {
			ids = append(ids, nc.NSID)
		}
		if !slices.Equal(ids, st.want) {
			t.Errorf("%s: NSIDs %v, want %v", st.name, ids, st.want)
		}
		if !reflect.DeepEqual(cfg, parse(st.file)) {
			t.Errorf("%s: resolveFile changed its argument", st.name)
		}
		prev, base = cfg, got
	}
}
