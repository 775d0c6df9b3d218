// Package durable replaces small files so that a crash leaves either the
// old content or the new, never a mix, and a call that returned survives
// power loss: the content and the folder entry are both synced.
//
// github.com/google/renameio does the atomic part but leaves out the
// folder's fsync (its README: atomicity, not durability), which is what
// makes a rename survive power loss.
package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces path with b: a temporary file in path's folder,
// written, given perm and fsynced, renamed over path, and the folder
// fsynced. On error path holds its old content (or, where only the
// folder's fsync failed, the new content not yet durable) and no
// temporary file is left behind.
func WriteFile(path string, b []byte, perm fs.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return syncDir(dir)
}

// Remove removes path, durably: the folder is fsynced. A path that does
// not exist is not an error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes the creation, rename or removal of an entry in dir
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}
