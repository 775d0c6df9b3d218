package spdk

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/flashpath/flashpath/target/server"
)

// DefaultSocket is where `flashpath target` serves the JSON-RPC when it
// runs as root and is given no --rpc-socket (SPDK's is /var/tmp/spdk.sock).
const DefaultSocket = "/run/flashpath/spdk.sock"

// Options for Listen.
type Options struct {
	Logger *slog.Logger
	// Version is flashpath's version, shown by spdk_get_version.
	Version string
	// VolumeDir is the folder of the volume files that
	// flashpath_volume_create makes (volume.go); empty: no volumes.
	VolumeDir string
	// StateFile, if set, is rewritten with the running configuration
	// (SPDK's JSON config) after every request that changes it
	// (state.go).
	StateFile string
}

// Server serves SPDK's JSON-RPC on a Unix socket for a running target.
type Server struct {
	srv     *server.Server
	log     *slog.Logger
	opts    Options
	path    string
	ln      net.Listener
	started time.Time // ticks of bdev_get_iostat

	// mu serializes the methods: each reads the running configuration,
	// changes a copy and applies it before the next starts.
	mu         sync.Mutex
	bdevs      map[string]*bdev           // by name; guarded by mu
	transports map[string]json.RawMessage // by trtype (TCP, RDMA): the params as created; guarded by mu
	listenRefs map[string]map[string]bool // listener added over RPC → NQNs that named it; guarded by mu
	fileLn     map[string]bool            // listeners of the configuration file, every subsystem's; guarded by mu
	fileDisc   map[string]bool            // discovery-only listeners of the configuration file; guarded by mu
	nextMalloc int                        // guarded by mu
	maxNS      map[string]int             // max_namespaces by NQN; guarded by mu
	keys       map[string]string          // keyring: key name → file; guarded by mu

	connMu sync.Mutex
	conns  map[net.Conn]struct{} // guarded by connMu; nil once closed
	wg     sync.WaitGroup

	httpSrv *http.Server // ListenHTTP's; nil without
}

// New returns the JSON-RPC methods for srv, served nowhere yet: Serve
// serves them on a socket, LoadConfig replays a saved configuration
// through them.
func New(srv *server.Server, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{srv: srv, log: opts.Logger, opts: opts, started: time.Now(),
		bdevs: map[string]*bdev{}, transports: map[string]json.RawMessage{}, listenRefs: map[string]map[string]bool{},
		maxNS: map[string]int{}, keys: map[string]string{}, conns: map[net.Conn]struct{}{}}
	cfg := srv.Applied()
	s.fileLn, s.fileDisc = map[string]bool{}, map[string]bool{}
	for _, l := range cfg.DiscoveryListeners {
		s.fileDisc[l] = true
	}
	for _, l := range cfg.Listeners {
		s.fileLn[l] = true
		if tr := trtypeOf(l); tr != "" {
			s.transports[tr] = json.RawMessage(`{"trtype":"` + tr + `"}`)
		}
	}
	return s
}

// Listen serves the JSON-RPC for srv on the Unix socket path: New, then
// Serve.
func Listen(srv *server.Server, path string, opts Options) (*Server, error) {
	s := New(srv, opts)
	if err := s.Serve(path); err != nil {
		return nil, err
	}
	return s, nil
}

// Serve serves the methods on the Unix socket path, mode 0600, until
// Close. A stale socket at path (no process answers on it) is removed; a
// socket that answers is another daemon's, and an error. srv's
// configuration should name the socket (server.Config.RPCSocket), which
// lets its listeners and subsystems go down to none.
func (s *Server) Serve(path string) error {
	if s.ln != nil {
		return fmt.Errorf("rpc socket %s: already serving on %s", path, s.path)
	}
	if err := removeStale(path); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("rpc socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("rpc socket %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("rpc socket %s: %w", path, err)
	}
	s.path, s.ln = path, ln
	s.wg.Add(1)
	go s.accept()
	s.log.Info("SPDK JSON-RPC listening", "socket", path)
	return nil
}

// removeStale removes a socket at path that no process answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rpc socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("rpc socket %s: a file that is not a socket is there: remove it or choose another --rpc-socket", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("rpc socket %s: another process serves it (a running target?): stop it or choose another --rpc-socket", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("rpc socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("rpc socket %s: removing the stale socket: %w", path, err)
	}
	return nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.path }

// Close stops serving: the socket is closed and removed, open connections
// are closed, and Close waits for their requests to finish.
func (s *Server) Close() error {
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	if s.httpSrv != nil {
		if herr := s.httpSrv.Close(); err == nil {
			err = herr
		}
	}
	s.connMu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.connMu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("rpc socket: accept failed: JSON-RPC stopped", "socket", s.path, "err", err)
			}
			return
		}
		s.connMu.Lock()
		if s.conns == nil {
			s.connMu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.connMu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			s.connMu.Lock()
			if s.conns != nil {
				delete(s.conns, c)
			}
			s.connMu.Unlock()
			c.Close()
		}()
	}
}

// serveConn answers the requests on c until it closes or sends something
// that is not JSON.
func (s *Server) serveConn(c net.Conn) {
	d := json.NewDecoder(bufio.NewReader(c))
	w := bufio.NewWriter(c)
	for {
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return
			}
			var se *json.SyntaxError
			if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
				s.log.Warn("rpc: malformed JSON: connection closed", "err", err)
				w.Write(encodeResponse(nil, nil, errorf(CodeParseError, "Parse error")))
				w.Flush()
			}
			return
		}
		if len(raw) > maxRequestSize {
			w.Write(encodeResponse(nil, nil, errorf(CodeInvalidRequest, "Invalid request: larger than %d bytes", maxRequestSize)))
			if w.Flush() != nil {
				return
			}
			continue
		}
		resp := s.Handle(raw)
		if resp == nil {
			continue
		}
		w.Write(resp)
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// Handle answers one request: the encoded response, or nil for a
// notification (a request without an id).
func (s *Server) Handle(raw []byte) []byte {
	req, rerr := DecodeRequest(raw)
	if rerr != nil {
		return encodeResponse(req.ID, nil, rerr)
	}
	result, rerr := s.call(req)
	if rerr != nil {
		s.log.Info("rpc: request failed", "method", req.Method, "code", rerr.Code, "err", rerr.Message)
	} else if !readOnly(req.Method) {
		if err := s.SaveState(); err != nil {
			// The change is made; a restart would lose it.
			s.log.Error("rpc: state not saved: a restart loses this change", "method", req.Method, "err", err)
		}
	}
	if req.ID == nil {
		return nil
	}
	return encodeResponse(req.ID, result, rerr)
}

// call runs one method.
func (s *Server) call(req Request) (any, *Error) {
	m, ok := methods[req.Method]
	if !ok {
		if why, ok := refused[req.Method]; ok {
			return nil, errorf(CodeNotSupported, "Operation not supported: flashpath does not implement %s: %s", req.Method, why)
		}
		return nil, errorf(CodeMethodNotFound, "Method not found")
	}
	if req.Params != nil && req.Params[0] == '[' {
		return nil, errorf(CodeInvalidParams, "Invalid parameters: %s takes an object", req.Method)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return m(s, req.Params)
}
