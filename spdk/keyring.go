package spdk

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/flashpath/flashpath/target/server"
)

// SPDK's keyring holds named keys that other methods refer to by name:
// nvmf_subsystem_add_host's psk (a TLS PSK), dhchap_key and
// dhchap_ctrlr_key. flashpath has keyring_file, SPDK's file module: a key
// is a file path, read when a host uses it, in the formats nvme-cli
// writes ("NVMeTLSkey-1:01:...:", "DHHC-1:00:...:"). A host's key
// becomes its allowed_hosts entry's tls_key_file, dhchap_key_file or
// dhchap_ctrl_key_file.

// SPDK's errno codes for keyring failures.
const (
	codeNotPermitted = -int(syscall.EPERM)
	codeNoKey        = -126 // -ENOKEY on Linux, SPDK's errno for a key it lacks
)

// keyring_file_add_key: the file must be absolute, owned by the daemon's
// user and closed to everyone else (mode 0600 or stricter), as SPDK
// requires.
func (s *Server) addKey(params json.RawMessage) (any, *Error) {
	var p struct {
		Name string `json:"name"`
		Path string `json:"path"`
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	if p.Name == "" || p.Path == "" {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: name and path are required, e.g. keyring_file_add_key key0 /etc/flashpath/keys/host1.psk")
	}
	if _, ok := s.keys[p.Name]; ok {
		return nil, errorf(CodeExists, "File exists: key %s exists: choose another name or remove it first (keyring_file_remove_key)", p.Name)
	}
	if e := checkKeyFile(p.Path); e != nil {
		return nil, e
	}
	s.keys[p.Name] = p.Path
	s.log.Info("rpc: key added", "key", p.Name, "path", p.Path)
	return true, nil
}

// checkKeyFile applies SPDK's keyring_file rules to path.
func checkKeyFile(path string) *Error {
	if !filepath.IsAbs(path) {
		return errorf(codeNotPermitted, "Operation not permitted: key file %q: give an absolute path", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return errorf(-int(errno), "%s: key file %s", errno.Error(), path)
		}
		return errorf(CodeInternalError, "key file %s: %v", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return errorf(codeNotPermitted, "Operation not permitted: key file %s has mode %04o: others may read it: chmod 600 it", path, fi.Mode().Perm())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return errorf(codeNotPermitted, "Operation not permitted: key file %s belongs to uid %d, not the target's user (uid %d): chown it", path, st.Uid, os.Getuid())
	}
	return nil
}

// keyUses lists the hosts (subsystem/host) whose keys include path.
func keyUses(cfg *server.Config, path string) []string {
	var uses []string
	for _, sc := range cfg.Subsystems {
		for _, h := range sc.AllowedHosts {
			if h.TLSKeyFile == path || h.DHCHAPKeyFile == path || h.DHCHAPCtrlKeyFile == path {
				uses = append(uses, h.NQN+" of "+sc.NQN)
			}
		}
	}
	return uses
}

// keyring_file_remove_key: unlike SPDK, which lets hosts keep a removed
// key until they go, a key a host uses is refused with the hosts named.
func (s *Server) removeKey(params json.RawMessage) (any, *Error) {
	var p struct {
		Name string `json:"name"`
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	path, ok := s.keys[p.Name]
	if !ok {
		return nil, errorf(codeNoKey, "Required key not available: no key %s (keyring_get_keys lists them)", p.Name)
	}
	if uses := keyUses(s.srv.Applied(), path); len(uses) > 0 {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: key %s is in use by host %v: remove the host (nvmf_subsystem_remove_host) or give it other keys (nvmf_subsystem_set_keys) first", p.Name, uses)
	}
	delete(s.keys, p.Name)
	s.log.Info("rpc: key removed", "key", p.Name)
	return true, nil
}

// keyring_get_keys.
func (s *Server) getKeys(params json.RawMessage) (any, *Error) {
	if e := noParams(params); e != nil {
		return nil, e
	}
	type keyInfo struct {
		Name    string `json:"name"`
		Module  string `json:"module"`
		Removed bool   `json:"removed"`
		Probed  bool   `json:"probed"`
		Refcnt  int    `json:"refcnt"`
		Path    string `json:"path"`
	}
	cfg := s.srv.Applied()
	out := []keyInfo{}
	for _, name := range sortedKeys(s.keys) {
		path := s.keys[name]
		out = append(out, keyInfo{Name: name, Module: "keyring_file", Refcnt: 1 + len(keyUses(cfg, path)), Path: path})
	}
	return out, nil
}

// hostKeys are the keyring names a host refers to.
type hostKeys struct {
	PSK            string `json:"psk,omitempty"`
	DHCHAPKey      string `json:"dhchap_key,omitempty"`
	DHCHAPCtrlrKey string `json:"dhchap_ctrlr_key,omitempty"`
}

// apply sets h's key files from the keyring; a name not there is SPDK's
// "Invalid parameters" with the name.
func (k hostKeys) apply(s *Server, h *server.HostConfig) *Error {
	path := func(what, name string) (string, *Error) {
		if name == "" {
			return "", nil
		}
		p, ok := s.keys[name]
		if !ok {
			return "", errorf(CodeInvalidParams, "Invalid parameters: %s %s: no such key: add it first (keyring_file_add_key %s /path/to/key)", what, name, name)
		}
		return p, nil
	}
	var e *Error
	h.TLSKey, h.DHCHAPKey, h.DHCHAPCtrlKey = "", "", ""
	if h.TLSKeyFile, e = path("psk", k.PSK); e != nil {
		return e
	}
	if h.DHCHAPKeyFile, e = path("dhchap_key", k.DHCHAPKey); e != nil {
		return e
	}
	if h.DHCHAPCtrlKeyFile, e = path("dhchap_ctrlr_key", k.DHCHAPCtrlrKey); e != nil {
		return e
	}
	if k.DHCHAPCtrlrKey != "" && k.DHCHAPKey == "" {
		return errorf(CodeInvalidParams, "Invalid parameters: dhchap_ctrlr_key without dhchap_key: the host authenticates first")
	}
	return nil
}

// nvmf_subsystem_set_keys: a host's DH-HMAC-CHAP keys, replaced (one left
// out is cleared, as in SPDK); its TLS PSK stays.
func (s *Server) setKeys(params json.RawMessage) (any, *Error) {
	var p struct {
		NQN            string `json:"nqn"`
		Host           string `json:"host"`
		DHCHAPKey      string `json:"dhchap_key"`
		DHCHAPCtrlrKey string `json:"dhchap_ctrlr_key"`
		tgtName
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	e := s.update("set keys", func(cfg *server.Config) *Error {
		sc, e := subsys(cfg, p.NQN)
		if e != nil {
			return e
		}
		i := slices.IndexFunc(sc.AllowedHosts, func(h server.HostConfig) bool { return h.NQN == p.Host })
		if i < 0 {
			return errorf(CodeInvalidParams, "Invalid parameters: host %s is not on %s's list (nvmf_subsystem_add_host it)", p.Host, p.NQN)
		}
		h := &sc.AllowedHosts[i]
		k := hostKeys{PSK: s.keyName(h.TLSKeyFile), DHCHAPKey: p.DHCHAPKey, DHCHAPCtrlrKey: p.DHCHAPCtrlrKey}
		if h.TLSKey != "" {
			return errorf(CodeInvalidParams, "Invalid parameters: host %s has an inline tls_key from the configuration file: change it there", p.Host)
		}
		return k.apply(s, h)
	})
	if e != nil {
		return nil, e
	}
	return true, nil
}

// keyName returns the keyring name of the key file path ("" for none or
// a file not in the keyring).
func (s *Server) keyName(path string) string {
	if path == "" {
		return ""
	}
	for _, name := range sortedKeys(s.keys) {
		if s.keys[name] == path {
			return name
		}
	}
	return ""
}

// keyNames names every key file cfg's hosts use: the keyring's name, or
// for a file the configuration file named, its base name (made unique),
// which save_config adds to the keyring. A key given inline in the
// configuration file has no file to name: an error.
func (s *Server) keyNames(cfg *server.Config) (map[string]string, *Error) {
	names := map[string]string{}
	taken := map[string]bool{}
	for name, path := range s.keys {
		if _, ok := names[path]; !ok || name < names[path] {
			names[path] = name
		}
		taken[name] = true
	}
	for _, sc := range cfg.Subsystems {
		for _, h := range sc.AllowedHosts {
			if h.TLSKey != "" || h.DHCHAPKey != "" || h.DHCHAPCtrlKey != "" {
				return nil, errorf(CodeInternalError, "host %s of %s has a key written inline in the configuration file, which SPDK's JSON config cannot hold (its keyring names files): put it in a file (tls_key_file, dhchap_key_file, dhchap_ctrl_key_file), or keep this target in a flashpath config file", h.NQN, sc.NQN)
			}
			for _, path := range []string{h.TLSKeyFile, h.DHCHAPKeyFile, h.DHCHAPCtrlKeyFile} {
				if path == "" || names[path] != "" {
					continue
				}
				name := filepath.Base(path)
				for i := 2; taken[name]; i++ {
					name = filepath.Base(path) + "-" + strconv.Itoa(i)
				}
				names[path], taken[name] = name, true
			}
		}
	}
	return names, nil
}

// keyringConfig lists keyring_file_add_key for every key, sorted by name.
func (s *Server) keyringConfig(cfg *server.Config) (any, *Error) {
	names, e := s.keyNames(cfg)
	if e != nil {
		return nil, e
	}
	type add struct {
		Name string `json:"name"`
		Path string `json:"path"`
	}
	byName := map[string]string{}
	for path, name := range names {
		byName[name] = path
	}
	out := []configEntry{}
	for _, name := range sortedKeys(byName) {
		out = append(out, entry("keyring_file_add_key", add{name, byName[name]}))
	}
	return out, nil
}

// hostKeysOf names h's keys by names.
func hostKeysOf(h server.HostConfig, names map[string]string) hostKeys {
	return hostKeys{PSK: names[h.TLSKeyFile], DHCHAPKey: names[h.DHCHAPKeyFile], DHCHAPCtrlrKey: names[h.DHCHAPCtrlKeyFile]}
}
