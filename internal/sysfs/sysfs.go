// Package sysfs reads what flashpath needs from Linux's sysfs: attribute
// files, and the NVMe controllers of /sys/class/nvme with their
// namespaces. Every function takes the directory or the mount point
// (/sys), so tests point it at a fake tree; on a machine without sysfs
// they find nothing.
package sysfs

import (
	"os"
	"path/filepath"
	"strings"
)

// ReadAttr returns the contents of the attribute file dir/name without
// the trailing newline (and surrounding blanks).
func ReadAttr(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// Attr is ReadAttr's value, "" where the file cannot be read.
func Attr(dir, name string) string {
	v, _ := ReadAttr(dir, name)
	return v
}

// Names lists the entries of dir (sorted by name), none where it cannot
// be read.
func Names(dir string) []string {
	ents, _ := os.ReadDir(dir)
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
