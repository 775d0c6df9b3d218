package spdk

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/flashpath/flashpath/internal/durable"
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

// writeAtomic replaces path with b durably, creating its folder.
func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := durable.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	return nil
}
