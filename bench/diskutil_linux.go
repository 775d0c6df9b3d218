package bench

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Disk utilization as fio's diskutil.c measures it: for every local
// file or block device the jobs use, the whole disk under it (a
// partition counts as its disk) and, for stacked devices (dm, md), the
// disks beneath them; /sys/block/DEV/stat read when the run starts and
// when it ends, util the share of the time between the two that the
// device had I/O in flight (io_ticks).

// diskStat is the fields of /sys/block/DEV/stat that fio reads.
type diskStat struct {
	ios, merges, ticks [2]uint64 // read, write
	ioTicks, inQueue   uint64
}

func readDiskStat(path string) (diskStat, bool) {
	var s diskStat
	b, err := os.ReadFile(path)
	if err != nil {
		return s, false
	}
	f := strings.Fields(string(b))
	if len(f) < 11 {
		return s, false
	}
	var v [11]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
			return s, false
		}
	}
	s.ios = [2]uint64{v[0], v[4]}
	s.merges = [2]uint64{v[1], v[5]}
	s.ticks = [2]uint64{v[3], v[7]}
	s.ioTicks, s.inQueue = v[9], v[10]
	return s, true
}

type diskState struct {
	name   string
	stat   string // .../stat
	start  diskStat
	t0     time.Time
	slaves []*diskState
}

// diskUtil samples the disks of a run: startDiskUtil before the jobs
// start, stop after the last ends.
type diskUtil struct {
	disks []*diskState // fio's disk_list order: as found, slaves after their master
}

// diskEngines are the engines whose files are local files or block
// devices (fio counts disk utilization for every engine without
// FIO_DISKLESSIO or FIO_NODISKUTIL).
var diskEngines = map[string]bool{"psync": true, "io_uring": true, "libaio": true, "cufile": true}

// startDiskUtil finds the disks under the jobs' files and reads their
// statistics. Jobs with disk_util=0 add none (fio's init_disk_util),
// but a disk another job has is still reported.
func startDiskUtil(jobs []*Job) *diskUtil {
	du := &diskUtil{}
	seen := map[string]bool{}
	for _, j := range jobs {
		if !diskEngines[j.IOEngine] || j.NoDiskUtil {
			continue
		}
		for c := range j.NumJobs {
			names := filenames(j, c)
			if names == nil {
				names = []string{filename(j, c)}
			}
			for _, f := range names {
				if dir := blockDirOf(f); dir != "" {
					du.add(dir, seen)
				}
			}
		}
	}
	return du
}

// add adds the disk at its sysfs directory and the disks beneath it.
func (du *diskUtil) add(dir string, seen map[string]bool) *diskState {
	name := filepath.Base(dir)
	if seen[name] {
		for _, d := range du.disks {
			if d.name == name {
				return d
			}
		}
		return nil
	}
	st, ok := readDiskStat(filepath.Join(dir, "stat"))
	if !ok {
		return nil
	}
	seen[name] = true
	d := &diskState{name: name, stat: filepath.Join(dir, "stat"), start: st, t0: time.Now()}
	du.disks = append(du.disks, d)
	slaves, _ := os.ReadDir(filepath.Join(dir, "slaves"))
	for _, s := range slaves {
		sd, err := filepath.EvalSymlinks(filepath.Join(dir, "slaves", s.Name()))
		if err != nil {
			continue
		}
		if sub := du.add(wholeDisk(sd), seen); sub != nil {
			d.slaves = append(d.slaves, sub)
		}
	}
	return d
}

// blockDirOf is the sysfs directory of the disk holding path: a block
// device's own, or that of the file system's device (of its directory
// when the file does not exist yet). "" when there is none (tmpfs,
// overlay, a network file system).
func blockDirOf(path string) string {
	var st unix.Stat_t
	var dev uint64
	switch err := unix.Lstat(path, &st); {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK:
		dev = st.Rdev
	case err == nil && (st.Mode&unix.S_IFMT == unix.S_IFCHR || st.Mode&unix.S_IFMT == unix.S_IFIFO):
		return ""
	case err == nil:
		dev = st.Dev
	default:
		if unix.Stat(filepath.Dir(path), &st) != nil {
			return ""
		}
		dev = st.Dev
	}
	link := "/sys/dev/block/" + strconv.FormatUint(uint64(unix.Major(dev)), 10) + ":" + strconv.FormatUint(uint64(unix.Minor(dev)), 10)
	dir, err := filepath.EvalSymlinks(link)
	if err != nil {
		return ""
	}
	return wholeDisk(dir)
}

// wholeDisk is the disk of a partition's sysfs directory (fio: a
// directory whose parent has a queue/ is a partition).
func wholeDisk(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		return filepath.Dir(dir)
	}
	return dir
}

// stop reads the disks' statistics again and returns fio's disk_util
// entries.
func (du *diskUtil) stop() []fioDiskUtil {
	if du == nil {
		return nil
	}
	type delta struct {
		s    diskStat
		msec uint64
	}
	deltas := map[*diskState]delta{}
	for _, d := range du.disks {
		end, ok := readDiskStat(d.stat)
		if !ok {
			continue
		}
		var s diskStat
		for i := range 2 {
			s.ios[i] = end.ios[i] - d.start.ios[i]
			s.merges[i] = end.merges[i] - d.start.merges[i]
			s.ticks[i] = end.ticks[i] - d.start.ticks[i]
		}
		s.ioTicks = end.ioTicks - d.start.ioTicks
		s.inQueue = end.inQueue - d.start.inQueue
		deltas[d] = delta{s, uint64(time.Since(d.t0).Milliseconds())}
	}
	util := func(x delta) float64 {
		if x.msec == 0 {
			return 0
		}
		return min(100, 100*float64(x.s.ioTicks)/float64(x.msec))
	}
	var out []fioDiskUtil
	for _, d := range du.disks {
		x, ok := deltas[d]
		if !ok {
			continue
		}
		e := fioDiskUtil{Name: d.name, ReadIOs: x.s.ios[0], WriteIOs: x.s.ios[1], ReadMerges: x.s.merges[0], WriteMerges: x.s.merges[1],
			ReadTicks: x.s.ticks[0], WriteTicks: x.s.ticks[1], InQueue: x.s.inQueue, Util: util(x)}
		// fio's aggregate_slaves_stats: the slaves' averages, and the
		// busiest slave's utilization.
		var a fioDiskAggr
		n := uint64(0)
		for _, sd := range d.slaves {
			sx, ok := deltas[sd]
			if !ok {
				continue
			}
			n++
			a.AggrReadIOs += sx.s.ios[0]
			a.AggrWriteIOs += sx.s.ios[1]
			a.AggrReadMerges += sx.s.merges[0]
			a.AggrWriteMerges += sx.s.merges[1]
			a.AggrReadTicks += sx.s.ticks[0]
			a.AggrWriteTicks += sx.s.ticks[1]
			a.AggrInQueue += sx.s.inQueue
			a.AggrUtil = max(a.AggrUtil, util(sx))
		}
		if n > 0 {
			a.AggrReadIOs /= n
			a.AggrWriteIOs /= n
			a.AggrReadMerges /= n
			a.AggrWriteMerges /= n
			a.AggrReadTicks /= n
			a.AggrWriteTicks /= n
			a.AggrInQueue /= n
			e.fioDiskAggr = &a
		}
		out = append(out, e)
	}
	return out
}
