package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func runBenchCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newBenchCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestBenchCmdFioFlagsToJSON(t *testing.T) {
	out, err := runBenchCmd(t, "--name=rr", "--ioengine=null", "--rw=randread", "--bs=4k", "--iodepth=8",
		"--size=1m", "--norandommap", "--output-format=json", "--eta=never")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Jobs []struct {
			JobName string `json:"jobname"`
			Read    struct {
				TotalIOs uint64 `json:"total_ios"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(doc.Jobs) != 1 || doc.Jobs[0].JobName != "rr" || doc.Jobs[0].Read.TotalIOs != 256 {
		t.Fatalf("%+v", doc)
	}
}

func TestBenchCmdRejectsUnknownOptions(t *testing.T) {
	if _, err := runBenchCmd(t, "--ioengine=null", "--frobnicate=1"); err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("err %v", err)
	}
	if _, err := runBenchCmd(t, "--ioengine=null", "--bs=4q"); err == nil || !strings.Contains(err.Error(), "option bs") {
		t.Fatalf("err %v", err)
	}
}

func TestBenchCmdSweepTable(t *testing.T) {
	out, err := runBenchCmd(t, "--ioengine=null", "--size=1m", "--iodepth=1,4", "--eta=never", "--output-format=table")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 {
		t.Fatalf("want header + 2 rows:\n%s", out)
	}
}
