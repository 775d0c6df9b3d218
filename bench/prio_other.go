//go:build !linux

package bench

import "fmt"

func setThreadPriority(j *Job) error {
	if j.Nice != 0 || j.Prio >= 0 || j.PrioClass >= 0 {
		return fmt.Errorf("option nice/prio: thread priorities need Linux: %w", ErrNotSupported)
	}
	return nil
}
