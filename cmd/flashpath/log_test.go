package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestTargetJSONLogs: with --log-format json, stdout and stderr carry JSON
// records only, one a line: the serving lines, the discovery line and the
// SPDK JSON-RPC line are records with their facts as attributes.
func TestTargetJSONLogs(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "spdk.sock")
	stdout, stderr := &lockedBuffer{}, newLineReader()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCmd()
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs([]string{"target", "--listen", "tcp://127.0.0.1:0", "--discovery-listen", "127.0.0.1:0", "--nqn", "nqn.2026-11.io.flashpath:json",
		"--rpc-socket", sock, "--log-format", "json"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx); stderr.pw.Close() }()
	recs := map[string]map[string]any{}
	var lines []string
	for line := range stderr.lines() {
		lines = append(lines, line)
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line is not JSON: %q: %v", line, err)
			continue
		}
		msg, _ := rec["msg"].(string)
		recs[msg] = rec
		if msg == "SPDK JSON-RPC" { // the last of them: stop the target
			cancel()
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("target: %v\n%s", err, strings.Join(lines, "\n"))
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout carries %q: want nothing but JSON records, on stderr", stdout.String())
	}
	addr := regexp.MustCompile(`^127\.0\.0\.1$`)
	for msg, fields := range map[string][]string{
		"serving":           {"subsys", "trtype", "traddr", "trsvcid", "tls", "connect", "bench"},
		"discovery service": {"trtype", "traddr", "trsvcid", "discover", "connect_all"},
		"SPDK JSON-RPC":     {"socket", "try"},
		"shutting down":     nil,
		"stopped":           nil,
	} {
		rec, ok := recs[msg]
		if !ok {
			t.Errorf("no %q record in\n%s", msg, strings.Join(lines, "\n"))
			continue
		}
		for _, f := range fields {
			if _, ok := rec[f]; !ok {
				t.Errorf("%q record lacks %q: %v", msg, f, rec)
			}
		}
	}
	if rec := recs["serving"]; rec != nil {
		if rec["subsys"] != "nqn.2026-11.io.flashpath:json" || rec["trtype"] != "tcp" || !addr.MatchString(fmt.Sprint(rec["traddr"])) ||
			!strings.HasPrefix(fmt.Sprint(rec["connect"]), "nvme connect -t tcp -a 127.0.0.1 -s "+fmt.Sprint(rec["trsvcid"])+" -n nqn.2026-11.io.flashpath:json") {
			t.Errorf("serving record %v", rec)
		}
	}
	if rec := recs["SPDK JSON-RPC"]; rec != nil && rec["socket"] != sock {
		t.Errorf("SPDK JSON-RPC record %v: want socket %s", rec, sock)
	}
}

// TestDaemonErrorJSON: with JSON logs the error a daemon ends with is a
// record too, and main prints no plain line after it.
func TestDaemonErrorJSON(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"target", "--config", filepath.Join(t.TempDir(), "none.yaml"), "--log-format", "json"})
	err := root.Execute()
	if err == nil || !errors.As(err, new(loggedError)) {
		t.Fatalf("error %v: want one the log reported (loggedError)", err)
	}
	var rec map[string]any
	if jerr := json.Unmarshal(out.Bytes(), &rec); jerr != nil || rec["level"] != "ERROR" || !strings.Contains(fmt.Sprint(rec["err"]), "none.yaml") {
		t.Fatalf("output %q (%v): want one JSON error record naming the file", out.String(), jerr)
	}
}

// TestDaemonJournald: on journald's stream (JOURNAL_STREAM names stderr's
// device and inode) every log line starts with its syslog priority, <3>
// for errors, <6> for info, <7> for debug, which journald turns into the
// entry's PRIORITY; elsewhere lines have no prefix.
func TestDaemonJournald(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))

	// A target that starts and stops (info), then one that cannot
	// start (its error), in text mode as a unit without --log-format runs.
	sock := filepath.Join(t.TempDir(), "spdk.sock")
	ctx, cancel := context.WithCancel(context.Background())
	root := newRootCmd()
	root.SetOut(io.Discard)
	root.SetErr(f)
	root.SetArgs([]string{"target", "--listen", "tcp://127.0.0.1:0", "--rpc-socket", sock})
	cancel() // stops as soon as it runs: what it logs on the way in and out is enough
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("target: %v", err)
	}
	root = newRootCmd()
	root.SetOut(io.Discard)
	root.SetErr(f)
	root.SetArgs([]string{"target", "--config", filepath.Join(t.TempDir(), "none.yaml")})
	if err := root.Execute(); !errors.As(err, new(loggedError)) {
		t.Fatalf("error %v: want one the log reported", err)
	}

	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	pri := map[string]string{"ERROR": "<3>", "WARN": "<4>", "INFO": "<6>", "DEBUG": "<7>"}
	seen := map[string]bool{}
	line := regexp.MustCompile(`^(<[0-7]>)time=\S+ level=([A-Z]+) msg=`)
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("line without a priority prefix: %q", l)
			continue
		}
		if pri[m[2]] != m[1] {
			t.Errorf("level %s with prefix %s: %q", m[2], m[1], l)
		}
		seen[m[1]] = true
	}
	for _, p := range []string{"<3>", "<6>"} {
		if !seen[p] {
			t.Errorf("no %s line in\n%s", p, b)
		}
	}

	// Not journald's stream (another file): no prefix.
	var out bytes.Buffer
	root = newRootCmd()
	root.SetErr(&out)
	root.SetArgs([]string{"target", "--config", filepath.Join(t.TempDir(), "none.yaml")})
	if err := root.Execute(); err == nil || errors.As(err, new(loggedError)) || out.Len() != 0 {
		t.Fatalf("off the journal: error %v (want a plain one for main to print), log %q", err, out.String())
	}
}

// lineReader is a stderr whose lines a test reads as they come.
type lineReader struct {
	pr *io.PipeReader
	pw *io.PipeWriter
}

func newLineReader() *lineReader {
	pr, pw := io.Pipe()
	return &lineReader{pr, pw}
}

func (l *lineReader) Write(b []byte) (int, error) { return l.pw.Write(b) }

// lines yields the lines written until the writer closes.
func (l *lineReader) lines() func(func(string) bool) {
	return func(yield func(string) bool) {
		sc := bufio.NewScanner(l.pr)
		for sc.Scan() {
			if !yield(sc.Text()) {
				go io.Copy(io.Discard, l.pr)
				return
			}
		}
	}
}

// lockedBuffer is a bytes.Buffer that goroutines may write at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
