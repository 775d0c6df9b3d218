package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// LogOptions are fio's per-job log files: write_bw_log, write_iops_log,
// write_lat_log, log_avg_msec, log_offset and per_job_logs.
type LogOptions struct {
	BW, IOPS, Lat      bool   // which logs to write
	BWName, IOPSName   string // file name prefixes ("" : the job's name)
	LatName            string
	AvgMsec            int  // log_avg_msec: average over windows of this many ms (0: latency per I/O)
	Offset             bool // log_offset: add each I/O's offset
	SharedAcrossClones bool // per_job_logs=0: the clones of a job share one file
}

func (o *LogOptions) any() bool { return o.BW || o.IOPS || o.Lat }

// bwWindow is fio's bwavgtime: the bandwidth and IOPS logs average over
// it, or over log_avg_msec when that is shorter.
const bwWindow = 500 * time.Millisecond

// logFile is one log file, shared by the clones of a job with
// per_job_logs=0.
type logFile struct {
	name string
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	refs int
	err  error
}

// logFiles opens each log file once while jobs write it. A file that an
// earlier group of the run wrote (per_job_logs=0 jobs sharing a name
// across a stonewall) is appended to, as fio appends shared logs; others
// start empty.
type logFiles struct {
	mu      sync.Mutex
	files   map[string]*logFile
	written map[string]bool
}

func (l *logFiles) open(name string) (*logFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lf := l.files[name]; lf != nil {
		lf.refs++
		return lf, nil
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if l.written[name] {
		flag = os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(name, flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	if l.files == nil {
		l.files, l.written = map[string]*logFile{}, map[string]bool{}
	}
	lf := &logFile{name: name, f: f, w: bufio.NewWriterSize(f, 256<<10), refs: 1}
	l.files[name] = lf
	l.written[name] = true
	return lf, nil
}

func (lf *logFile) write(line []byte) {
	lf.mu.Lock()
	if lf.err == nil {
		_, lf.err = lf.w.Write(line)
	}
	lf.mu.Unlock()
}

func (l *logFiles) release(lf *logFile) error {
	l.mu.Lock()
	lf.refs--
	last := lf.refs == 0
	if last {
		delete(l.files, lf.name)
	}
	l.mu.Unlock()
	if !last {
		return nil
	}
	err := lf.err
	if ferr := lf.w.Flush(); err == nil {
		err = ferr
	}
	if cerr := lf.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("log file %s: %w", lf.f.Name(), err)
	}
	return nil
}

// Latency log kinds, in fio's file name suffixes.
const (
	logSlat = iota
	logClat
	logLat
	logBW
	logIOPS
	numLogs
)

var logSuffix = [numLogs]string{"slat", "clat", "lat", "bw", "iops"}

// jobLog is one clone's logging: the files it writes and the windows it
// averages over.
type jobLog struct {
	opt    LogOptions
	files  *logFiles
	out    [numLogs]*logFile
	line   []byte
	avg    int64 // latency window in ns (0: every I/O)
	bwAvg  int64 // bandwidth/IOPS window in ns
	latWin window
	bwWin  window
	// noSlat: no slat entries (a synchronous engine's I/O has none in
	// fio). noBW and noIOPS: the bandwidth or IOPS log stays empty, as
	// fio's per-I/O one (log_avg_msec=0) with disable_bw, or gtod_reduce.
	noSlat, noBW, noIOPS bool
}

// window accumulates one averaging period per direction.
type window struct {
	start int64
	n     [numDirs]uint64
	bytes [numDirs]uint64
	sum   [numDirs][3]float64 // slat, clat, lat in ns
}

// logName is fio's log file name: PREFIX_KIND.N.log, N the clone's thread
// number (1-based, counted over every clone of every job of the run, as
// fio's td->thread_number), or PREFIX_KIND.log when the clones share it.
func logName(prefix, job, kind string, thread int, shared bool) string {
	if prefix == "" {
		prefix = job
	}
	if shared {
		return prefix + "_" + kind + ".log"
	}
	return prefix + "_" + kind + "." + strconv.Itoa(thread) + ".log"
}

func newJobLog(j *Job, thread int, files *logFiles) (*jobLog, error) {
	o := j.Logs
	l := &jobLog{opt: o, files: files, avg: int64(o.AvgMsec) * int64(time.Millisecond), bwAvg: int64(bwWindow)}
	if l.avg > 0 {
		l.bwAvg = min(l.bwAvg, l.avg)
	}
	l.noBW, l.noIOPS = j.noBWSamples(), j.noIOPSSamples()
	prefix := [numLogs]string{o.LatName, o.LatName, o.LatName, o.BWName, o.IOPSName}
	// fio writes no log of a latency it does not measure (disable_slat,
	// disable_clat, disable_lat), not even an empty one.
	for k, on := range [numLogs]bool{o.Lat && !j.DisableSlat, o.Lat && !j.DisableClat, o.Lat && !j.DisableLat, o.BW, o.IOPS} {
		if !on {
			continue
		}
		lf, err := files.open(logName(prefix[k], j.Name, logSuffix[k], thread, o.SharedAcrossClones))
		if err != nil {
			l.close()
			return nil, err
		}
		l.out[k] = lf
	}
	return l, nil
}

// start begins the first windows at t (the end of the ramp).
func (l *jobLog) start(t int64) {
	l.latWin = window{start: t}
	l.bwWin = window{start: t}
}

// record logs one completed I/O (t: its completion, ns since the job's
// start).
func (l *jobLog) record(d Direction, io *IO, t int64) {
	slat, clat, lat := float64(io.submitted-io.issued), float64(t-io.submitted), float64(t-io.issued)
	if l.opt.Lat {
		if l.avg == 0 {
			for k, v := range [3]float64{slat, clat, lat} {
				if l.out[k] != nil && (k != logSlat || !l.noSlat) {
					l.emit(k, t, uint64(v), d, uint64(io.Len), uint64(io.Offset))
				}
			}
		} else {
			w := &l.latWin
			w.n[d]++
			w.sum[d][0] += slat
			w.sum[d][1] += clat
			w.sum[d][2] += lat
		}
	}
	l.bwWin.n[d]++
	l.bwWin.bytes[d] += uint64(io.Res)
}

// tick closes the windows that have run their length by t.
func (l *jobLog) tick(t int64) {
	if l.opt.Lat && l.avg > 0 && t-l.latWin.start >= l.avg {
		l.flushLat(t)
	}
	if (l.opt.BW || l.opt.IOPS) && t-l.bwWin.start >= l.bwAvg {
		l.flushBW(t)
	}
}

// finish writes what the last, partial windows hold.
func (l *jobLog) finish(t int64) {
	if l.opt.Lat && l.avg > 0 {
		l.flushLat(t)
	}
	if l.opt.BW || l.opt.IOPS {
		l.flushBW(t)
	}
}

func (l *jobLog) flushLat(t int64) {
	w := &l.latWin
	for d := range numDirs {
		if n := w.n[d]; n > 0 {
			for k := range 3 {
				if l.out[k] != nil && (k != logSlat || !l.noSlat) {
					l.emit(k, t, uint64(w.sum[d][k]/float64(n)), d, 0, 0)
				}
			}
		}
	}
	*w = window{start: t}
}

func (l *jobLog) flushBW(t int64) {
	w := &l.bwWin
	secs := float64(t-w.start) / 1e9
	if secs > 0 {
		for d := range numDirs {
			if w.n[d] == 0 {
				continue
			}
			if l.opt.BW && !l.noBW {
				l.emit(logBW, t, uint64(float64(w.bytes[d])/1024/secs), d, 0, 0)
			}
			if l.opt.IOPS && !l.noIOPS {
				l.emit(logIOPS, t, uint64(float64(w.n[d])/secs), d, 0, 0)
			}
		}
	}
	*w = window{start: t}
}

// emit writes one line in fio's format: time (ms), value, direction
// (0 read, 1 write, 2 trim), block size, [offset,] priority (0).
func (l *jobLog) emit(k int, t int64, v uint64, d Direction, bs, off uint64) {
	b := l.line[:0]
	b = strconv.AppendInt(b, t/int64(time.Millisecond), 10)
	b = append(b, ", "...)
	b = strconv.AppendUint(b, v, 10)
	b = append(b, ", "...)
	b = strconv.AppendInt(b, int64(d), 10)
	b = append(b, ", "...)
	b = strconv.AppendUint(b, bs, 10)
	if l.opt.Offset {
		b = append(b, ", "...)
		b = strconv.AppendUint(b, off, 10)
	}
	b = append(b, ", 0\n"...)
	l.line = b
	l.out[k].write(b)
}

func (l *jobLog) close() error {
	var first error
	for k, lf := range l.out {
		if lf == nil {
			continue
		}
		if err := l.files.release(lf); err != nil && first == nil {
			first = err
		}
		l.out[k] = nil
	}
	return first
}
