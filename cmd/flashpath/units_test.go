package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// What the Debian package ships around the binary (scripts/deb.sh): the
// systemd units in deploy/ and the man pages.

// systemdUnits are the units in deploy/ with the exposure that `systemd-analyze
// security` gives them today (x10, its --threshold scale): a change that
// makes a unit's sandbox weaker fails TestUnitSandbox. Lower the number
// when a change makes one stronger.
var systemdUnits = []struct {
	name     string
	cmd      string // flashpath's subcommand in ExecStart=
	exposure int
}{
	{"flashpath-target.service", "target", 18},
	{"flashpath-initiator.service", "initiator", 20},
}

// unitFile reads a unit's settings: key → values in order.
func unitFile(t *testing.T, name string) map[string][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("../../deploy", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", name, line)
		}
		kv[k] = append(kv[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return kv
}

// TestUnitExecStart: each unit runs a flashpath command that exists with
// flags that exist, reloads with SIGHUP, reports readiness, and starts
// only once the configuration file it names is there.
func TestUnitExecStart(t *testing.T) {
	for _, u := range systemdUnits {
		t.Run(u.name, func(t *testing.T) {
			kv := unitFile(t, u.name)
			for k, want := range map[string]string{
				"Type":       "notify",
				"ExecReload": "/bin/kill -HUP $MAINPID",
				"Restart":    "on-failure",
			} {
				if got := kv[k]; len(got) != 1 || got[0] != want {
					t.Errorf("%s=%q, want %q", k, got, want)
				}
			}
			if len(kv["ExecStart"]) != 1 {
				t.Fatalf("ExecStart=%q, want one", kv["ExecStart"])
			}
			args := strings.Fields(kv["ExecStart"][0])
			if args[0] != "/usr/bin/flashpath" || len(args) < 2 || args[1] != u.cmd {
				t.Fatalf("ExecStart=%q, want /usr/bin/flashpath %s ...", kv["ExecStart"][0], u.cmd)
			}
			cmd, rest, err := newRootCmd().Find(args[1:])
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Fatalf("ExecStart: %v", err)
			}
			if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
				t.Fatalf("ExecStart: %v", err)
			}
			conf := cmd.Flags().Lookup("config").Value.String()
			if got := kv["ConditionPathExists"]; len(got) != 1 || got[0] != conf {
				t.Errorf("ConditionPathExists=%q, want the --config file %s: the package enables the unit, the configuration starts it", got, conf)
			}
		})
	}
}

// TestUnitSandbox: systemd-analyze rates each unit's sandbox no worse
// than recorded in systemdUnits, and finds nothing wrong in it (unknown keys,
// bad values). Offline: no systemd needs to run.
func TestUnitSandbox(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze missing (apt-get install systemd): the units' sandbox is not rated")
	}
	// verify checks that ExecStart's program exists: a stand-in for
	// /usr/bin/flashpath, in a copy of the unit under the same name.
	dir := t.TempDir()
	stub := filepath.Join(dir, "flashpath")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	overall := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) `)
	for _, u := range systemdUnits {
		t.Run(u.name, func(t *testing.T) {
			path := filepath.Join("../../deploy", u.name)
			out, err := exec.Command(sa, "security", "--offline=yes", "--threshold="+strconv.Itoa(u.exposure), path).CombinedOutput()
			m := overall.FindSubmatch(out)
			if m == nil {
				t.Fatalf("systemd-analyze security: %v\n%s", err, out)
			}
			t.Logf("exposure %s (recorded: %d.%d)", m[1], u.exposure/10, u.exposure%10)
			if err != nil {
				t.Errorf("exposure %s is above %d.%d: a setting of the sandbox got weaker (systemd-analyze security --offline=yes deploy/%s lists them)", m[1], u.exposure/10, u.exposure%10, u.name)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			cp := filepath.Join(dir, u.name)
			if err := os.WriteFile(cp, []byte(strings.ReplaceAll(string(b), "/usr/bin/flashpath", stub)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err = exec.Command(sa, "verify", "--man=no", cp).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
}

// TestManPages: `flashpath man DIR` (the package's man pages) writes a
// page per command, the daemons' with their flags.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	root := newRootCmd()
	root.SetArgs([]string{"man", dir})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for page, want := range map[string]string{
		"flashpath.1":           "flashpath",
		"flashpath-target.1":    `\fB--rpc-socket\fP`,
		"flashpath-initiator.1": `\fB--config\fP`,
		"flashpath-rpc.1":       ".SH NAME",
	} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q", page, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "flashpath-man.1")); err == nil {
		t.Error("the hidden man command has a page")
	}
}
