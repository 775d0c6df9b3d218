package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/testutil"
)

const ioTestNQN = "nqn.2026-11.io.flashpath:cli-io"

// startIOTarget serves a 4 MiB mem namespace, open to any host, with
// `flashpath target`.
func startIOTarget(t *testing.T) string {
	t.Helper()
	_, addr := startCLITarget(t, "--nqn", ioTestNQN, "--namespace", "mem:4MiB")
	return addr
}

func runCLI(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(bytes.NewReader(stdin))
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestDiscoverCmd(t *testing.T) {
	addr := startIOTarget(t)
	out, err := runCLI(t, nil, "discover", addr)
	if err != nil {
		t.Fatalf("discover: %v\n%s", err, out)
	}
	for _, want := range []string{"trtype:  tcp", "adrfam:  ipv4", "subtype: nvme subsystem", "subnqn:  " + ioTestNQN, "traddr:  127.0.0.1", "sectype: none"} {
		if !strings.Contains(out, want) {
			t.Errorf("discover output lacks %q:\n%s", want, out)
		}
	}
	out, err = runCLI(t, nil, "discover", addr, "--output", "json")
	if err != nil {
		t.Fatalf("discover --output json: %v", err)
	}
	var log struct {
		Records []struct {
			SubNQN string `json:"subnqn"`
			TrType string `json:"trtype"`
		} `json:"records"`
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatalf("discover json: %v\n%s", err, out)
	}
	found := false
	for _, r := range log.Records {
		found = found || (r.SubNQN == ioTestNQN && r.TrType == "tcp")
	}
	if !found {
		t.Errorf("json records %+v lack %s", log.Records, ioTestNQN)
	}
}

func TestIOCmd(t *testing.T) {
	addr := startIOTarget(t)
	base := []string{"io", "--addr", addr, "--nqn", ioTestNQN}

	out, err := runCLI(t, nil, append(base, "identify", "--output", "json")...)
	if err != nil {
		t.Fatalf("identify: %v\n%s", err, out)
	}
	var id struct {
		BlockSize int   `json:"block_size"`
		SizeBytes int64 `json:"size_bytes"`
	}
	if err := json.Unmarshal([]byte(out), &id); err != nil || id.BlockSize != 512 || id.SizeBytes != 4<<20 {
		t.Fatalf("identify json: %+v %v\n%s", id, err, out)
	}

	data := bytes.Repeat([]byte("flashpath!"), 300) // 3000 bytes: not whole blocks
	if _, err := runCLI(t, data, append(base, "write", "--offset", "4096")...); err == nil || !strings.Contains(err.Error(), "--pad") {
		t.Fatalf("write of 3000 bytes: %v, want a block size error naming --pad", err)
	}
	in := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, nil, append(base, "write", "--offset", "4096", "--in", in, "--pad")...); err != nil {
		t.Fatalf("write --pad: %v\n%s", err, out)
	}
	// Unaligned offset and length: the command reads whole blocks and cuts.
	out, err = runCLI(t, nil, append(base, "read", "--offset", "4100", "--length", "2990")...)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if out != string(data[4:2994]) {
		t.Errorf("read back %q..., want %q...", out[:20], data[4:24])
	}
	dst := filepath.Join(t.TempDir(), "out")
	if out, err := runCLI(t, nil, append(base, "read", "--offset", "4096", "--length", "3584", "--out", dst)...); err != nil {
		t.Fatalf("read --out: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(dst)
	want := append(bytes.Clone(data), make([]byte, 3584-3000)...)
	if !bytes.Equal(got, want) {
		t.Errorf("read --out wrote %d bytes that differ from the padded input", len(got))
	}
}

func TestIOCmdErrors(t *testing.T) {
	if _, err := runCLI(t, nil, "io", "--nqn", "x", "identify"); err == nil || !strings.Contains(err.Error(), "--addr") {
		t.Errorf("io without --addr: %v", err)
	}
	if _, err := runCLI(t, nil, "discover", "rdma://1.2.3.4"); err == nil || !strings.Contains(err.Error(), "RDMA unavailable") {
		t.Errorf("discover rdma://: %v", err)
	}
}

// TestIOMultipath: a target listening on two ports is two paths to its
// namespace: `io paths` shows both live and optimized, and data written
// through both paths reads back.
func TestIOMultipath(t *testing.T) {
	port := testutil.FreePort(t)
	_, addr := startCLITarget(t, "--listen", "tcp://127.0.0.1:"+port, "--nqn", ioTestNQN, "--namespace", "mem:4MiB")
	paths := addr + ",127.0.0.1:" + port
	out, err := runCLI(t, nil, "io", "--addr", paths, "--nqn", ioTestNQN, "paths", "--output", "json")
	if err != nil {
		t.Fatalf("paths: %v\n%s", err, out)
	}
	var got struct {
		NSID  uint32 `json:"nsid"`
		Paths []struct {
			Addr, State string
			ANA         string `json:"ana_state"`
			Usable      bool
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("paths json: %v\n%s", err, out)
	}
	if len(got.Paths) != 2 || got.NSID != 1 {
		t.Fatalf("paths: %s", out)
	}
	for _, p := range got.Paths {
		if p.State != "live" || p.ANA != "optimized" || !p.Usable {
			t.Errorf("path %+v, want live, optimized, usable", p)
		}
	}
	data := bytes.Repeat([]byte("multipath"), 1024)[:8192]
	if out, err := runCLI(t, data, "io", "--addr", paths, "--nqn", ioTestNQN, "write", "--offset", "4096"); err != nil {
		t.Fatalf("write: %v\n%s", err, out)
	}
	out, err = runCLI(t, nil, "io", "--addr", paths, "--nqn", ioTestNQN, "read", "--offset", "4096", "--length", "8192")
	if err != nil || out != string(data) {
		t.Fatalf("read through two paths: %v, %d bytes (want what was written)", err, len(out))
	}
	if out, err := runCLI(t, nil, "io", "--addr", paths, "--nqn", ioTestNQN, "identify"); err == nil || !strings.Contains(err.Error(), "several paths") {
		t.Errorf("identify over two paths: %v\n%s", err, out)
	}
}

// TestIOReservations: `io resv-*`, nvme-cli's commands by name and flag,
// between two hosts (two --hostid): a write exclusive reservation refuses
// the other host's write with "reservation conflict"; that host preempts
// it with abort and its write goes through; resv-report shows who holds.
// --cptpl is checked, and refused by a namespace without a ptpl_file.
func TestIOReservations(t *testing.T) {
	addr := startIOTarget(t)
	host := func(id string) []string {
		return []string{"io", "--addr", addr, "--nqn", ioTestNQN, "--hostid", id,
			"--hostnqn", "nqn.2014-08.org.nvmexpress:uuid:" + id}
	}
	a, b := host("0a000000-0000-4000-8000-00000000000a"), host("0b000000-0000-4000-8000-00000000000b")
	run := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, nil, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args[len(a):], " "), err, out)
		}
		return out
	}
	block := filepath.Join(t.TempDir(), "block")
	if err := os.WriteFile(block, bytes.Repeat([]byte{7}, 512), 0o644); err != nil {
		t.Fatal(err)
	}
	run(append(a, "resv-register", "--nrkey", "0xa")...)
	run(append(b, "resv-register", "-k", "11")...)
	run(append(a, "resv-acquire", "--crkey", "0xa", "--rtype", "1")...)
	if _, err := runCLI(t, nil, append(b, "write", "--in", block)...); err == nil || !strings.Contains(err.Error(), "reservation conflict") {
		t.Fatalf("B's write under A's reservation: %v", err)
	}
	if _, err := runCLI(t, nil, append(b, "resv-acquire", "--crkey", "11", "--rtype", "9")...); err == nil || !strings.Contains(err.Error(), "--rtype 9") {
		t.Fatalf("resv-acquire --rtype 9: %v", err)
	}
	run(append(b, "resv-acquire", "-c", "11", "-p", "0xa", "-t", "1", "-a", "2")...)
	run(append(b, "write", "--in", block)...)
	out := run(append(a, "resv-report")...)
	for _, want := range []string{"generation 3, reservation: write exclusive", "+- host 0b00000000004000800000000000000b key 0xb (holds)"} {
		if !strings.Contains(out, want) {
			t.Errorf("resv-report lacks %q:\n%s", want, out)
		}
	}
	var rep resvJSON
	if err := json.Unmarshal([]byte(run(append(a, "resv-report", "-o", "json")...)), &rep); err != nil || rep.RType != 1 || len(rep.Registrants) != 1 || rep.Registrants[0].Key != 11 {
		t.Fatalf("resv-report json %+v (%v)", rep, err)
	}
	run(append(b, "resv-release", "-c", "11", "-t", "1")...)
	run(append(a, "write", "--in", block)...) // A is not registered, but nothing is reserved
	if _, err := runCLI(t, nil, append(b, "resv-register", "-k", "11", "--cptpl", "1")...); err == nil || !strings.Contains(err.Error(), "--cptpl 1") {
		t.Errorf("resv-register --cptpl 1: %v", err)
	}
	// The namespace has no ptpl_file: persistence through power loss is refused.
	if _, err := runCLI(t, nil, append(b, "resv-register", "-k", "11", "--cptpl", "3")...); err == nil || !strings.Contains(err.Error(), "invalid field") {
		t.Errorf("resv-register --cptpl 3 without a ptpl_file: %v", err)
	}
}
