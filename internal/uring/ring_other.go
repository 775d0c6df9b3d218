//go:build !linux

package uring

import (
	"fmt"
	"runtime"
)

// Ring is unavailable outside Linux.
type Ring struct{}

// New reports ErrNotSupported outside Linux.
func New(entries uint32, p *Params) (*Ring, error) {
	return nil, fmt.Errorf("io_uring needs Linux, this is %s; use ioengine=psync: %w", runtime.GOOS, ErrNotSupported)
}

func (r *Ring) Close() error                                               { return nil }
func (r *Ring) NextSQE() *SQE                                              { return nil }
func (r *Ring) Submit() (int, error)                                       { return 0, ErrNotSupported }
func (r *Ring) SubmitAndWait(uint32) (int, error)                          { return 0, ErrNotSupported }
func (r *Ring) WaitCQE() error                                             { return ErrNotSupported }
func (r *Ring) WaitCompletion() error                                      { return ErrNotSupported }
func (r *Ring) RegisterEventFd(int) error                                  { return ErrNotSupported }
func (r *Ring) PrepWriteFlags(int32, []byte, uint64, uint32, uint64) error { return ErrNotSupported }
func (r *Ring) Reap([]CQE) int                                             { return 0 }
func (r *Ring) Ready() int                                                 { return 0 }
func (r *Ring) Pending() int                                               { return 0 }
func (r *Ring) SQSpace() int                                               { return 0 }
func (r *Ring) SQEntries() int                                             { return 0 }
func (r *Ring) CQEntries() int                                             { return 0 }
func (r *Ring) Fd() int                                                    { return -1 }
func (r *Ring) Features() uint32                                           { return 0 }
func (r *Ring) PrepRead(int32, []byte, uint64, uint64) error               { return ErrNotSupported }
func (r *Ring) PrepWrite(int32, []byte, uint64, uint64) error              { return ErrNotSupported }
func (r *Ring) PrepReadFixed(int32, []byte, uint64, uint16, uint64) error  { return ErrNotSupported }
func (r *Ring) PrepWriteFixed(int32, []byte, uint64, uint16, uint64) error { return ErrNotSupported }
func (r *Ring) PrepFsync(int32, uint32, uint64) error                      { return ErrNotSupported }
func (r *Ring) PrepNop(uint64) error                                       { return ErrNotSupported }
func (r *Ring) RegisterBuffers([][]byte) error                             { return ErrNotSupported }
func (r *Ring) UnregisterBuffers() error                                   { return ErrNotSupported }
func (r *Ring) RegisterFiles([]int32) error                                { return ErrNotSupported }
func (r *Ring) UnregisterFiles() error                                     { return ErrNotSupported }
