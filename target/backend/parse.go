package backend

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse opens the backend that a command-line spec describes:
//
//	mem:SIZE              anonymous memory, e.g. mem:1GiB
//	null:SIZE             zeros, writes dropped, e.g. null:1TiB
//	file:PATH             an existing file or block device at its current size
//	file:PATH:SIZE        a file, created or extended to SIZE if needed
//	block:PATH[:SIZE]     like file:, but PATH must be a block device
//	/PATH[:SIZE]          an absolute path alone is file:/PATH, e.g. /dev/nvme0n1
//
// SIZE is anything ParseSize accepts. Options follow a '?', separated by '&':
//
//	?bs=4096              4096-byte logical blocks (default 512, or the device's)
//	?buffered             file and block: no O_DIRECT, go through the page cache
//	?ro                   file and block: read-only
//	?sync                 file and block: pread/pwrite on the queue's goroutine
//	                      instead of io_uring (one I/O in flight per queue)
//
// for example "file:/srv/ns1.img:64GiB?bs=4096&buffered". A PATH may hold
// ':' as long as what follows the last ':' does not start with a digit.
func Parse(spec string) (Backend, error) {
	main, query, _ := strings.Cut(spec, "?")
	opts, err := parseOptions(spec, query)
	if err != nil {
		return nil, err
	}
	kind, rest, ok := strings.Cut(main, ":")
	if strings.HasPrefix(main, "/") {
		kind, rest, ok = KindFile, main, true
	}
	if !ok {
		return nil, fmt.Errorf("backend %q: missing kind: use mem:SIZE, null:SIZE, file:PATH[:SIZE], or a device path such as /dev/nvme0n1", spec)
	}
	switch kind {
	case KindMem, KindNull:
		if opts.Buffered || opts.ReadOnly || opts.SyncIO {
			return nil, fmt.Errorf("backend %q: options buffered, ro and sync apply to file and block backends only: remove them", spec)
		}
		if rest == "" {
			return nil, fmt.Errorf("backend %q: size missing: give one, e.g. %s:1GiB", spec, kind)
		}
		size, err := ParseSize(rest)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", spec, err)
		}
		if kind == KindMem {
			m, err := NewMem(size, opts.BlockSize)
			if err != nil {
				return nil, err
			}
			return m, nil
		}
		n, err := NewNull(size, opts.BlockSize)
		if err != nil {
			return nil, err
		}
		return n, nil
	case KindFile, KindBlock:
		path := rest
		if i := strings.LastIndexByte(rest, ':'); i >= 0 && i+1 < len(rest) && rest[i+1] >= '0' && rest[i+1] <= '9' {
			size, err := ParseSize(rest[i+1:])
			if err != nil {
				return nil, fmt.Errorf("backend %q: %w", spec, err)
			}
			if size == 0 {
				return nil, fmt.Errorf("backend %q: size 0: give a positive size, or none for the current size", spec)
			}
			path, opts.Size = rest[:i], size
		}
		if path == "" {
			return nil, fmt.Errorf("backend %q: path missing: give one, e.g. %s:/srv/ns1.img:1GiB", spec, kind)
		}
		f, err := OpenFile(path, opts)
		if err != nil {
			return nil, err
		}
		if kind == KindBlock && f.Kind() != KindBlock {
			f.Close()
			return nil, fmt.Errorf("backend %q: %s is not a block device: use file:%s for a regular file", spec, path, path)
		}
		return f, nil
	default:
		return nil, fmt.Errorf("backend %q: unknown kind %q: use mem:SIZE, null:SIZE, file:PATH[:SIZE], block:PATH, or a device path such as /dev/nvme0n1", spec, kind)
	}
}

// parseOptions parses the part of a spec after '?'.
func parseOptions(spec, query string) (FileOptions, error) {
	var o FileOptions
	if query == "" {
		return o, nil
	}
	for _, kv := range strings.Split(query, "&") {
		k, v, hasV := strings.Cut(kv, "=")
		switch k {
		case "bs":
			bs, err := strconv.Atoi(v)
			if err != nil || !validBlockSize(bs) {
				return o, fmt.Errorf("backend %q: option bs=%s: use bs=512 or bs=4096", spec, v)
			}
			o.BlockSize = bs
		case "buffered", "ro", "sync":
			b := true
			if hasV {
				var err error
				if b, err = strconv.ParseBool(v); err != nil {
					return o, fmt.Errorf("backend %q: option %s=%s: use %s, %s=true or %s=false", spec, k, v, k, k, k)
				}
			}
			switch k {
			case "ro":
				o.ReadOnly = b
			case "sync":
				o.SyncIO = b
			default:
				o.Buffered = b
			}
		default:
			return o, fmt.Errorf("backend %q: unknown option %q: use bs=4096, buffered, ro or sync", spec, kv)
		}
	}
	return o, nil
}
