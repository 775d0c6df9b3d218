package spdk

import (
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// MinTokenLength is the shortest bearer token ListenHTTP takes.
const MinTokenLength = 16

// ListenHTTP serves the methods over HTTP on addr (HOST:PORT) for clients
// on other machines (flashpath csi's controller), as SPDK's
// rpc_http_proxy.py does: each request is one POST whose body is a
// JSON-RPC request and whose response body is its response. Every request
// must carry "Authorization: Bearer TOKEN"; anything else gets 401. With
// tlsConfig it is HTTPS (the token then never crosses the network in the
// clear); without, bind it to a management network. Close stops it.
func (s *Server) ListenHTTP(addr, token string, tlsConfig *tls.Config) error {
	if s.httpSrv != nil {
		return fmt.Errorf("rpc http %s: already serving", addr)
	}
	if len(token) < MinTokenLength {
		return fmt.Errorf("rpc http %s: the token has %d characters: want at least %d (e.g. head -c 32 /dev/urandom | base64)", addr, len(token), MinTokenLength)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("rpc http: %w", err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s.httpSrv = &http.Server{Addr: ln.Addr().String(), Handler: s.HTTPHandler(token), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)} // TLS handshake failures
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("rpc http: serving stopped", "addr", addr, "err", err)
		}
	}()
	s.log.Info("SPDK JSON-RPC listening over HTTP", "addr", ln.Addr().String(), "tls", tlsConfig != nil)
	return nil
}

// HTTPAddr is the address ListenHTTP serves on, or "".
func (s *Server) HTTPAddr() string {
	if s.httpSrv == nil {
		return ""
	}
	return s.httpSrv.Addr
}

// HTTPHandler answers JSON-RPC requests POSTed with the bearer token.
func (s *Server) HTTPHandler(token string) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flashpath"`)
			http.Error(w, "unauthorized: send Authorization: Bearer TOKEN (the target's --rpc-token-file)", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST a JSON-RPC request", http.StatusMethodNotAllowed)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
			http.Error(w, "Content-Type: want application/json", http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestSize+1))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var resp []byte
		if len(body) > maxRequestSize {
			resp = encodeResponse(nil, nil, errorf(CodeInvalidRequest, "Invalid request: larger than %d bytes", maxRequestSize))
		} else if resp = s.Handle(body); resp == nil {
			w.WriteHeader(http.StatusNoContent) // a notification
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(resp)
	})
}
