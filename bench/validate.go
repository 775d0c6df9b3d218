package bench

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

func (j *Job) validate() error {
	if j.Name == "" {
		j.Name = "job"
	}
	info, ok := lookupEngine(j.IOEngine)
	if !ok {
		return fmt.Errorf("option ioengine: unknown engine %q (have %s)", j.IOEngine, strings.Join(EngineNames(), ", "))
	}
	for name := range j.EngineOptions {
		if !slices.Contains(info.options, name) {
			return fmt.Errorf("%w %q (not a job option, nor an option of engine %s)", ErrUnknownOption, name, j.IOEngine)
		}
	}
	if j.NrFiles > 1 || j.FileSize > 0 {
		if j.NrFiles > 1 && j.Filename != "" {
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
		return errors.New("option random_distribution: needs a random rw pattern (randread, randwrite, randrw)")
	}
	return nil
}
