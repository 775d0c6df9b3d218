package bench

import (
	"bytes"
	"testing"
)

// FuzzJobFile feeds arbitrary job files to the parser and the job builder:
// either an error or jobs, never a panic. Includes are refused (no file is
// read); the seeds in testdata/fuzz cover fio's grammar: inline comments,
// include, keywords, filename lists, bsrange, kb_base, percentages, rw's
// modifier, refused options, libcufile.
func FuzzJobFile(f *testing.F) {
	f.Add([]byte("[global]\nioengine=null\nbs=4k\n\n[rr]\nrw=randread\niodepth=32\nsize=1g\n"))
	f.Add([]byte("; comment\n# another\n[global]\nrw=randrw\nrwmixread=70\n[a]\nnumjobs=2\n[b]\nstonewall\nbs=4k,128k\n"))
	f.Add([]byte("[x]\nfilename=${HOME}/f\nruntime=10s\ntime_based\nrandom_distribution=zipf:1.2\nverify=crc32c\n"))
	f.Add([]byte("[global\nbs=\n[]\n=\n[a]\nbogus=1\n"))
	f.Add([]byte("[z]\nrw=randrw\nrandom_distribution=zoned:60/10:30/20:10/70\nfsync=4\nloops=2\n[p]\nrandom_distribution=pareto:0.9\n[n]\nrandom_distribution=normal:5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		secs, err := parseJobFile(bytes.NewReader(data), "fuzz.fio", nil)
		if err != nil {
			return
		}
		var global []Option
		var rest []Section
		for _, s := range secs {
			if s.Name == "global" {
				global = append(global, s.Options...)
			} else {
				rest = append(rest, s)
			}
		}
		jobs, err := BuildJobs(global, rest, nil)
		if err == nil && len(rest) > 0 && len(jobs) == 0 {
			t.Fatalf("%d sections built no job and no error", len(rest))
		}
	})
}
