package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/target"
)

// HostConfig is one entry of a subsystem's allowed_hosts: a host NQN
// alone, or an object that adds the DH-HMAC-CHAP secrets the host must
// authenticate with (as nvme-cli's `nvme gen-dhchap-key` writes them), or
// the TLS PSK it must connect with (`nvme gen-tls-key`):
//
//	allowed_hosts:
//	  - nqn.2014-08.org.nvmexpress:uuid:...            # no authentication
//	  - nqn: nqn.2014-08.org.nvmexpress:uuid:...
//	    dhchap_key_file: /etc/flashpath/keys/host1     # the host proves this
//	    dhchap_ctrl_key_file: /etc/flashpath/keys/tgt1 # the target proves this, if the host asks
//	  - nqn: nqn.2014-08.org.nvmexpress:uuid:...
//	    tls_key_file: /etc/flashpath/keys/host3.psk    # TLS only, with this PSK
type HostConfig struct {
	NQN string `json:"nqn"`
	// DHCHAPKey is the host's secret, "DHHC-1:XX:...:"; DHCHAPKeyFile
	// names a file holding it instead (keep it mode 0600).
	DHCHAPKey     string `json:"dhchap_key,omitempty"`
	DHCHAPKeyFile string `json:"dhchap_key_file,omitempty"`
	// DHCHAPCtrlKey is the controller's secret, for hosts that
	// authenticate the target too (bidirectional); or DHCHAPCtrlKeyFile.
	DHCHAPCtrlKey     string `json:"dhchap_ctrl_key,omitempty"`
	DHCHAPCtrlKeyFile string `json:"dhchap_ctrl_key_file,omitempty"`
	// TLSKey is the host's configured TLS PSK, "NVMeTLSkey-1:XX:...:"
	// (nvme gen-tls-key); TLSKeyFile names a file holding it instead.
	// A host with one connects over TLS only, and does not run
	// DH-HMAC-CHAP there.
	TLSKey     string `json:"tls_key,omitempty"`
	TLSKeyFile string `json:"tls_key_file,omitempty"`

	keys *target.HostKeys // resolved by Validate
	tls  *dhchap.PSK      // resolved by Validate
	// loose are the key files Validate found readable by others, for
	// Start and Reload to warn about (once each, on the server's log).
	loose []looseKey
}

// UnmarshalJSON takes a bare NQN string or the object form.
func (h *HostConfig) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '"' {
		*h = HostConfig{}
		return json.Unmarshal(b, &h.NQN)
	}
	type plain HostConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p plain
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*h = HostConfig(p)
	return nil
}

// resolve reads and parses the host's secrets.
func (h *HostConfig) resolve() error {
	h.keys, h.tls, h.loose = nil, nil, nil
	psk, err := h.readKey("tls_key", h.TLSKey, h.TLSKeyFile, "TLS PSK")
	if err != nil {
		return err
	}
	if psk != "" {
		p, err := dhchap.ParsePSK(psk)
		if err != nil {
			return fmt.Errorf("tls_key: %w", err)
		}
		h.tls = &p
	}
	key, err := h.readSecret("dhchap_key", h.DHCHAPKey, h.DHCHAPKeyFile)
	if err != nil {
		return err
	}
	ctrl, err := h.readSecret("dhchap_ctrl_key", h.DHCHAPCtrlKey, h.DHCHAPCtrlKeyFile)
	if err != nil {
		return err
	}
	switch {
	case key == nil && ctrl != nil:
		return fmt.Errorf("dhchap_ctrl_key without dhchap_key: the host must authenticate before the target can (give it a key: nvme gen-dhchap-key --nqn %s)", h.NQN)
	case key != nil:
		h.keys = &target.HostKeys{Key: *key, CtrlKey: ctrl}
	}
	return nil
}

// looseKey is a key file that others can read.
type looseKey struct {
	what, file string
	mode       os.FileMode
}

// readKey returns a key given inline or in a file (field_file), noting in
// h.loose a file readable by others; what names the key in the warning.
func (h *HostConfig) readKey(field, inline, file, what string) (string, error) {
	if inline != "" && file != "" {
		return "", fmt.Errorf("%s and %s_file are both set: choose one", field, field)
	}
	if file == "" {
		return inline, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_file: %w", field, err)
	}
	if fi, err := os.Stat(file); err == nil && fi.Mode().Perm()&0o077 != 0 {
		h.loose = append(h.loose, looseKey{what, file, fi.Mode().Perm()})
	}
	return strings.TrimSpace(string(b)), nil
}

func (h *HostConfig) readSecret(field, inline, file string) (*dhchap.Secret, error) {
	s, err := h.readKey(field, inline, file, "DH-HMAC-CHAP secret")
	if err != nil || s == "" {
		return nil, err
	}
	sec, err := dhchap.ParseSecret(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return &sec, nil
}

// identity is what reload compares: the NQN and the secrets.
func (h HostConfig) identity() string {
	id := h.NQN
	if h.keys != nil {
		id += " " + h.keys.Key.String()
		if h.keys.CtrlKey != nil {
			id += " " + h.keys.CtrlKey.String()
		}
	}
	if h.tls != nil {
		id += " tls " + h.tls.String()
	}
	return id
}

// authOptions parses the configured hash functions and DH groups.
func (c *Config) authOptions() ([]dhchap.Hash, []dhchap.DHGroup, error) {
	var hs []dhchap.Hash
	for i, s := range c.DHCHAPHashes {
		h, err := dhchap.ParseHash(s)
		if err != nil {
			return nil, nil, fmt.Errorf("dhchap_hashes[%d]: %w", i, err)
		}
		hs = append(hs, h)
	}
	var gs []dhchap.DHGroup
	for i, s := range c.DHCHAPDHGroups {
		if s == "" {
			return nil, nil, fmt.Errorf("dhchap_dhgroups[%d]: empty (YAML reads a bare null as no value: write \"null\" in quotes)", i)
		}
		g, err := dhchap.ParseDHGroup(s)
		if err != nil {
			return nil, nil, fmt.Errorf("dhchap_dhgroups[%d]: %w", i, err)
		}
		gs = append(gs, g)
	}
	return hs, gs, nil
}

// warnLooseKeys logs, once per file, the key files of the allowed hosts
// that others can read.
func (c *Config) warnLooseKeys(log *slog.Logger) {
	seen := map[string]bool{}
	for i := range c.Subsystems {
		for _, h := range c.Subsystems[i].AllowedHosts {
			for _, k := range h.loose {
				if !seen[k.file] {
					seen[k.file] = true
					log.Warn(k.what+" file is readable by others: chmod 600 it", "file", k.file, "mode", k.mode.String(), "host", h.NQN)
				}
			}
		}
	}
}
