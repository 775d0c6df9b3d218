package spdk

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The state file (Options.StateFile) keeps what the JSON-RPC made across
// restarts, as an SPDK user keeps rpc.py save_config's output: after every
// request that changes the target, the running configuration is written
// there as SPDK's JSON config, and `flashpath target --rpc-state FILE`
// replays it at start (as --config with such a file does). The write is
// atomic (a temporary file renamed over it), so a crash leaves the
// previous state or the new one.

// readOnly reports whether method only reads (nothing to save after it).
func readOnly(method string) bool {
	return strings.Contains(method, "_get_") || strings.HasSuffix(method, "_get") || method == "framework_wait_init"
}

// SaveState writes the running configuration to Options.StateFile (a
// no-op without one).
func (s *Server) SaveState() error {
	if s.opts.StateFile == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Config{Subsystems: []ConfigSubsystem{}}
	for _, sub := range frameworkSubsystems {
		params, _ := json.Marshal(map[string]string{"name": sub.Name})
		res, e := s.getConfig(params)
		if e != nil {
			return fmt.Errorf("state file %s: %s: %s", s.opts.StateFile, sub.Name, e.Message)
		}
		b, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("state file %s: %w", s.opts.StateFile, err)
		}
		entries := []json.RawMessage{}
		if err := json.Unmarshal(b, &entries); err != nil {
			return fmt.Errorf("state file %s: %w", s.opts.StateFile, err)
		}
		c.Subsystems = append(c.Subsystems, ConfigSubsystem{sub.Name, entries})
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("state file %s: %w", s.opts.StateFile, err)
	}
	return writeAtomic(s.opts.StateFile, append(b, '\n'))
}

// writeAtomic replaces path with b: a temporary file beside it, synced,
// renamed over it, and the folder synced.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o600)
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
		return fmt.Errorf("state file %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
