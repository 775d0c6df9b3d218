package bench

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNrFilesService: which file and offset each I/O of a sequential
// pattern goes to, by file_service_type: roundrobin deals the files in
// turn (:2 two blocks each), sequential finishes one before the next.
func TestNrFilesService(t *testing.T) {
	for _, tc := range []struct {
		svc  string
		want string // file:offset/4k of the first 8 I/Os
	}{
		{"roundrobin", "0:0 1:0 2:0 0:1 1:1 2:1 0:2 1:2"},
		{"roundrobin:2", "0:0 0:1 1:0 1:1 2:0 2:1 0:2 0:3"},
		{"sequential", "0:0 0:1 0:2 0:3 0:4 0:5 0:6 0:7"},
	} {
		if _, err := runJobs(t, Option{"ioengine", "test-record"}, Option{"rw", "read"}, Option{"nrfiles", "3"},
			Option{"filesize", "64k"}, Option{"file_service_type", tc.svc}); err != nil {
			t.Fatal(err)
		}
		e := lastRecordEngine
		if len(e.ios) != 48 {
			t.Fatalf("%s: %d I/Os, want 48 (3 files of 16 blocks)", tc.svc, len(e.ios))
		}
		var got []string
		for i := range 8 {
			got = append(got, fmt.Sprintf("%d:%d", e.files[i], e.ios[i][0]/4096))
		}
		if s := strings.Join(got, " "); s != tc.want {
			t.Errorf("%s: %s, want %s", tc.svc, s, tc.want)
		}
		seen := map[[2]int64]bool{}
		for i, io := range e.ios {
			seen[[2]int64{int64(e.files[i]), io[0]}] = true
		}
		if len(seen) != 48 {
			t.Errorf("%s: %d distinct blocks in one pass, want 48", tc.svc, len(seen))
		}
	}
}

// TestNrFilesLocal: psync and io_uring write nrfiles files named
// JOB.CLONE.N in directory=, each filesize bytes, and verify them.
func TestNrFilesLocal(t *testing.T) {
	for _, engine := range []string{"psync", "io_uring"} {
		dir := t.TempDir()
		_, err := runJobs(t, Option{"ioengine", engine}, Option{"directory", dir}, Option{"rw", "randwrite"},
			Option{"nrfiles", "3"}, Option{"size", "192k"}, Option{"verify", "crc32c"}, Option{"iodepth", "4"})
		skipUnsupported(t, err)
		if err != nil {
			t.Fatalf("%s: %v", engine, err)
		}
		for n := range 3 {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("e2e.0.%d", n)))
			if err != nil || len(b) != 64<<10 {
				t.Fatalf("%s: file %d: %d bytes, %v", engine, n, len(b), err)
			}
			for off := 0; off < len(b); off += 4096 {
				if got := binary.LittleEndian.Uint64(b[off+16:]); got != uint64(off) || binary.LittleEndian.Uint16(b[off:]) != verifyMagic {
					t.Fatalf("%s: file %d block %d: header for offset %d", engine, n, off, got)
				}
			}
		}
	}
}

func TestNrFilesRefused(t *testing.T) {
	for _, tc := range []struct {
		opts []string
		want string
	}{
		{[]string{"ioengine=psync", "nrfiles=2", "filename=/tmp/x", "size=1m"}, "not with filename="},
		{[]string{"ioengine=null", "nrfiles=2", "rw=read", "size=1m", "file_service_type=random"}, "random needs a random rw pattern"},
		{[]string{"ioengine=null", "nrfiles=2", "rw=read", "size=1m", "file_service_type=roundrobin:3"}, "must divide"},
		{[]string{"ioengine=null", "nrfiles=2"}, "give size (the total) or filesize"},
		{[]string{"ioengine=null", "file_service_type=sequential:2", "size=1m"}, ":N only with roundrobin"},
	} {
		_, err := BuildJobs(nil, []Section{{Name: "n", Options: opts(tc.opts...)}}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.opts, err, tc.want)
		}
	}
	_, err := runJobs(t, Option{"ioengine", "test-batch"}, Option{"nrfiles", "2"}, Option{"size", "1m"})
	if err == nil || !strings.Contains(err.Error(), "works on one file") {
		t.Errorf("nrfiles on a one-file engine: %v", err)
	}
}
