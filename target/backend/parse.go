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
	sp, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	return sp.Open()
}

// Spec is a parsed backend specification (see Parse): what to open,
// before anything is opened.
type Spec struct {
	Kind string // KindMem, KindNull, KindFile or KindBlock
	// Size is the capacity of mem and null; for file and block it is
	// Options.Size.
	Size    int64
	Path    string      // file and block
	Options FileOptions // BlockSize for all kinds; the rest for file and block
	spec    string
}

// ParseSpec parses a backend specification without opening anything.
func ParseSpec(spec string) (Spec, error) {
	main, query, _ := strings.Cut(spec, "?")
	opts, err := parseOptions(spec, query)
	if err != nil {
		return Spec{}, err
	}
	kind, rest, ok := strings.Cut(main, ":")
	if strings.HasPrefix(main, "/") {
		kind, rest, ok = KindFile, main, true
	}
	if !ok {
		return Spec{}, fmt.Errorf("backend %q: missing kind: use mem:SIZE, null:SIZE, file:PATH[:SIZE], or a device path such as /dev/nvme0n1", spec)
	}
	sp := Spec{Kind: kind, Options: opts, spec: spec}
	switch kind {
	case KindMem, KindNull:
		if opts.Buffered || opts.ReadOnly || opts.SyncIO {
			return Spec{}, fmt.Errorf("backend %q: options buffered, ro and sync apply to file and block backends only: remove them", spec)
		}
		if rest == "" {
			return Spec{}, fmt.Errorf("backend %q: size missing: give one, e.g. %s:1GiB", spec, kind)
		}
		if sp.Size, err = ParseSize(rest); err != nil {
			return Spec{}, fmt.Errorf("backend %q: %w", spec, err)
		}
	case KindFile, KindBlock:
		sp.Path = rest
		if i := strings.LastIndexByte(rest, ':'); i >= 0 && i+1 < len(rest) && rest[i+1] >= '0' && rest[i+1] <= '9' {
			size, err := ParseSize(rest[i+1:])
			if err != nil {
				return Spec{}, fmt.Errorf("backend %q: %w", spec, err)
			}
			if size == 0 {
				return Spec{}, fmt.Errorf("backend %q: size 0: give a positive size, or none for the current size", spec)
			}
			sp.Path, sp.Options.Size = rest[:i], size
		}
		if sp.Path == "" {
			return Spec{}, fmt.Errorf("backend %q: path missing: give one, e.g. %s:/srv/ns1.img:1GiB", spec, kind)
		}
	default:
		return Spec{}, fmt.Errorf("backend %q: unknown kind %q: use mem:SIZE, null:SIZE, file:PATH[:SIZE], block:PATH, or a device path such as /dev/nvme0n1", spec, kind)
	}
	return sp, nil
}

// Open opens the backend sp describes.
func (sp Spec) Open() (Backend, error) {
	switch sp.Kind {
	case KindMem:
		m, err := NewMem(sp.Size, sp.Options.BlockSize)
		if err != nil {
			return nil, err
		}
		return m, nil
	case KindNull:
		n, err := NewNull(sp.Size, sp.Options.BlockSize)
		if err != nil {
			return nil, err
		}
		return n, nil
	}
	f, err := OpenFile(sp.Path, sp.Options)
	if err != nil {
		return nil, err
	}
	if sp.Kind == KindBlock && f.Kind() != KindBlock {
		f.Close()
		return nil, fmt.Errorf("backend %q: %s is not a block device: use file:%s for a regular file", sp.spec, sp.Path, sp.Path)
	}
	return f, nil
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
