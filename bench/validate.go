package bench

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

func (j *Job) validate() error {
	if j.Name == "" {
		j.Name = "job"
	}
	if err := j.checkPending(); err != nil {
		return err
	}
	if err := j.resolvePercents(); err != nil {
		return err
	}
	if !j.AllowFileCreate {
		if err := j.checkFilesExist(); err != nil {
			return err
		}
	}
	j.resolveFileList()
	if j.NrFiles > 1 || j.FileSize > 0 {
		if j.NrFiles > 1 && j.Filename != "" && j.Filenames == nil {
			return errors.New("option nrfiles: not with filename= (the files are named JOB.CLONE.N in directory=)")
		}
		if j.FileSize == 0 {
			j.FileSize = j.Size / int64(j.NrFiles)
			if j.FileSize == 0 {
				return errors.New("option nrfiles: give size (the total) or filesize (each file)")
			}
		}
		if j.Size == 0 {
			j.Size = j.FileSize * int64(j.NrFiles)
		}
		if j.NrFiles > 1 && j.FileService == ServiceRandom && !j.RW.Random {
			return errors.New("option file_service_type: random needs a random rw pattern here (sequential patterns use roundrobin or sequential)")
		}
		for d := range numDirs {
			if j.NrFiles > 1 && j.BSSplit[d] != nil {
				return errors.New("option bssplit: not with nrfiles")
			}
			if bpf := j.FileSize / int64(j.BS[d]); j.issues(Direction(d)) && bpf%int64(j.FileServiceN) != 0 {
				return fmt.Errorf("option file_service_type: roundrobin:%d must divide the %d blocks of each file", j.FileServiceN, bpf)
			}
		}
	}
	if j.VerifyPattern != nil && j.Verify == "" {
		j.Verify = "pattern"
	}
	if j.Verify == "pattern" && j.VerifyPattern == nil {
		return errors.New("option verify: pattern needs verify_pattern")
	}
	if j.RW.Trim && j.Verify != "" {
		return errors.New("option verify: trim workloads cannot verify (trimmed blocks hold no pattern)")
	}
	for d, mix := range j.BSSplit {
		if mix == nil {
			continue
		}
		if j.Verify != "" {
			return errors.New("option verify: not with bssplit (each block is verified at the size it was written; use bs)")
		}
		if j.RW.Trim && j.RW.Write {
			return errors.New("option bssplit: not with trimwrite (it writes the blocks it trims, at one size)")
		}
		j.BS[d] = mix[0].Size
		for _, w := range mix {
			j.BS[d] = min(j.BS[d], w.Size)
		}
	}
	if j.RW.Trim && j.RW.Write && j.BS[DirTrim] != j.BS[DirWrite] {
		return fmt.Errorf("option bs: trimwrite writes the blocks it trims: trim and write block sizes must match (%d, %d)", j.BS[DirTrim], j.BS[DirWrite])
	}
	if j.Runtime == 0 && j.TimeBased {
		return errors.New("option time_based: needs runtime")
	}
	for d := range numDirs {
		if j.Direct && j.BS[d]%512 != 0 {
			return fmt.Errorf("option bs: %d is not a multiple of 512, required by direct=1", j.BS[d])
		}
	}
	if j.Dist.Kind != DistRandom && !j.RW.Random {
		// fio accepts it and draws no random offsets (a [global]
		// random_distribution over sequential jobs).
		j.Dist = Distribution{}
	}
	// fio's add_job: a latency not measured has no percentiles, whatever
	// the job file says after gtod_reduce or disable_*.
	j.LatPct = j.LatPct && !j.DisableLat
	j.ClatPct = j.ClatPct && !j.DisableClat
	j.SlatPct = j.SlatPct && !j.DisableSlat
	return nil
}

// checkEngineOptions resolves fio's libcufile to an engine (err: it
// cannot), then returns the options neither the core nor the engine
// knows, in the order they were written, each with the index of its
// option in opts; each error names the option and why.
func (j *Job) checkEngineOptions(opts []srcOption) (unknown []optionError, err error) {
	if _, ok := lookupEngine(j.IOEngine); !ok && j.EngineAlias != "libcufile" {
		return nil, fmt.Errorf("option ioengine: unknown engine %q (have %s)", j.IOEngine, strings.Join(EngineNames(), ", "))
	}
	if j.EngineAlias == "libcufile" {
		if err := j.resolveLibcufile(); err != nil {
			return nil, err
		}
	} else if j.CudaIO != "" || j.GPUDevIDs != nil {
		return nil, errors.New("options cuda_io and gpu_dev_ids: only with ioengine=libcufile (the gpu and cufile engines take gpu=N)")
	}
	info, ok := lookupEngine(j.IOEngine)
	if !ok {
		return nil, fmt.Errorf("option ioengine: libcufile with cuda_io=%s runs on engine %s, which this binary lacks", j.CudaIO, j.IOEngine)
	}
	seen := map[string]bool{}
	for i, o := range opts {
		name := strings.TrimSpace(o.Name)
		if findSpec(name) != nil || slices.Contains(info.options, name) || seen[name] {
			continue
		}
		seen[name] = true
		why := fmt.Sprintf("not a job option, nor an option of engine %s%s", j.IOEngine, didYouMean(name))
		if others := enginesTaking(name); len(others) > 0 {
			why = fmt.Sprintf("an option of engine %s, not of %s", strings.Join(others, ", "), j.IOEngine)
			if j.EngineAlias != "" {
				why += fmt.Sprintf(" (fio's %s runs on %s here)", j.EngineAlias, j.IOEngine)
			}
		} else if note, ok := engineOptionNotes[name]; ok {
			why = "an option of fio's engines that flashpath's " + j.IOEngine + " does not take: " + note
		}
		unknown = append(unknown, optionError{i, fmt.Errorf("option %s: %w (%s)", name, ErrUnknownOption, why)})
	}
	return unknown, nil
}

// resolveLibcufile runs fio's libcufile jobs: cuda_io=cufile (fio's
// default) on the cufile engine, posix on the gpu engine's bounce path;
// gpu_dev_ids (fio's default 0) becomes the engines' gpu list, whose IDs
// the clones take in turn (clone i the (i mod n)th, as fio by subjob
// number).
func (j *Job) resolveLibcufile() error {
	j.IOEngine = "cufile"
	if j.CudaIO == "posix" {
		j.IOEngine = "gpu"
		j.setEngineOption("gpu_path", "bounce")
	}
	if len(j.GPUDevIDs) > 0 {
		j.setEngineOption("gpu", gpuList(j.GPUDevIDs))
	}
	if j.CudaIO != "posix" && !j.Direct {
		return errors.New("option direct: ioengine=libcufile with cuda_io=cufile needs direct=1 (as fio's engine)")
	}
	return nil
}

// gpuList writes GPU IDs as gpu_dev_ids and the engines' gpu option take
// them: 0:1.
func gpuList(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ":")
}

func (j *Job) setEngineOption(name, v string) {
	if j.EngineOptions == nil {
		j.EngineOptions = map[string]string{}
	}
	if _, set := j.EngineOptions[name]; !set {
		j.EngineOptions[name] = v
	}
}

// checkPending refuses the values that are parsed but that the runtime
// does not run, so that no job runs with numbers that differ from fio's
// without saying so.
func (j *Job) checkPending() error {
	pending := func(opt, what string) error {
		return fmt.Errorf("option %s: %w: %s is parsed, but flashpath's workers do not run it", opt, ErrRefusedOption, what)
	}
	switch {
	case j.RWModifier < 0 && j.RW.Random:
		// fio reads it as a count of I/Os per random offset, unsigned:
		// 4294967288 for -8.
		return pending("rw", fmt.Sprintf("a negative modifier on a random pattern, %s:%d", j.RW, j.RWModifier))
	}
	return nil
}

// resolveFileList is fio's filename=a:b: as many files as named, unless
// nrfiles (given) is smaller; size is then shared among them.
func (j *Job) resolveFileList() {
	if len(j.Filenames) < 2 {
		return
	}
	given := false
	for _, kv := range slices.Concat(j.GlobalOptions, j.Options) {
		if s := findSpec(kv[0]); s != nil && s.name == "nrfiles" {
			given = true
		}
	}
	if given && j.NrFiles < len(j.Filenames) {
		j.Filenames = j.Filenames[:j.NrFiles]
	}
	j.NrFiles = len(j.Filenames)
	if j.NrFiles == 1 {
		j.Filenames = nil
	}
}

// resolvePercents turns offset_increment=N% into bytes of the job's local
// file or block device, as fio does. (size=N% and offset=N% are the
// workers': they take the engine's size, whatever the engine.)
func (j *Job) resolvePercents() error {
	if j.OffsetIncrementPct == 0 {
		return nil
	}
	if j.Filename == "" || strings.Contains(j.Filename, "://") {
		return errors.New("option offset_increment: a percentage needs filename= naming a local file or block device")
	}
	total, err := fileSize(j.Filename)
	if err != nil {
		return fmt.Errorf("option offset_increment: a percentage of %s: %w", j.Filename, err)
	}
	j.OffsetIncrement = int64(float64(total) * j.OffsetIncrementPct / 100)
	return nil
}

// checkFilesExist is allow_file_create=0: the job's files must exist.
func (j *Job) checkFilesExist() error {
	names := j.Filenames
	if names == nil && j.Filename != "" {
		names = []string{j.Filename}
	}
	for _, n := range names {
		if strings.Contains(n, "://") {
			continue
		}
		if _, err := os.Stat(n); err != nil {
			return fmt.Errorf("option allow_file_create: 0, and %w", err)
		}
	}
	if names == nil {
		return errors.New("option allow_file_create: 0 needs filename= (generated files are always created)")
	}
	return nil
}
