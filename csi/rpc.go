package csi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
)

// JSON-RPC error codes the controller tells apart (spdk/jsonrpc.go).
const (
	codeNoDevice      = -19
	codeInvalidParams = -32602
)

// rpcError is a target's JSON-RPC error.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message) }

// rpcClient calls one target's JSON-RPC: one POST per request over HTTP
// or HTTPS with the bearer token, or one connection per request on a Unix
// socket.
type rpcClient struct {
	name   string // the target's
	url    string // http(s)://HOST:PORT; empty for a socket
	socket string
	token  string
	http   *http.Client
	id     atomic.Int64
}

func newRPCClient(t TargetConfig) (*rpcClient, error) {
	c := &rpcClient{name: t.Name}
	if p, ok := strings.CutPrefix(t.RPC, "unix://"); ok {
		c.socket = p
		return c, nil
	}
	b, err := os.ReadFile(t.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("target %s: token: %w", t.Name, err)
	}
	c.url, c.token, c.http = strings.TrimSuffix(t.RPC, "/")+"/", strings.TrimSpace(string(b)), &http.Client{}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("target %s: ca_file: %w", t.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("target %s: ca_file %s: no PEM certificate in it", t.Name, t.CAFile)
		}
		c.http.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return c, nil
}

// call runs method with params and decodes its result into result (if
// not nil). A JSON-RPC error comes back as *rpcError; any other error
// means the target could not be asked.
func (c *rpcClient) call(ctx context.Context, method string, params, result any) error {
	req := map[string]any{"jsonrpc": "2.0", "method": method, "id": c.id.Add(1)}
	if params != nil {
		req["params"] = params
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var raw []byte
	if c.socket != "" {
		raw, err = c.callSocket(ctx, body)
	} else {
		raw, err = c.callHTTP(ctx, body)
	}
	if err != nil {
		return fmt.Errorf("target %s: %s: %w", c.name, method, err)
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcError       `json:"error"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("target %s: %s: reading the response: %w", c.name, method, err)
	}
	if resp.Error != nil {
		return resp.Error
	}
	if result != nil {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("target %s: %s: reading the result: %w", c.name, method, err)
		}
	}
	return nil
}

func (c *rpcClient) callHTTP(ctx context.Context, body []byte) ([]byte, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

func (c *rpcClient) callSocket(ctx context.Context, body []byte) ([]byte, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if _, err := conn.Write(body); err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := json.NewDecoder(conn).Decode(&raw); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, err
	}
	return raw, nil
}

// isRPC reports whether err is the target's JSON-RPC error with code.
func isRPC(err error, code int) bool {
	var re *rpcError
	return errors.As(err, &re) && re.Code == code
}
