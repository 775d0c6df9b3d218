package spdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
)

// Call sends one request to the JSON-RPC socket at path, as rpc.py does,
// and returns its result. A JSON-RPC error is returned as *Error.
func Call(ctx context.Context, path, method string, params json.RawMessage) (json.RawMessage, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("rpc socket %s: %w (is the target running with --rpc-socket %s?)", path, err, path)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if params != nil && !json.Valid(params) {
		return nil, fmt.Errorf("params %q: not JSON: give an object, e.g. '{\"nqn\": \"nqn.2016-06.io.spdk:cnode1\"}'", params)
	}
	req := Request{Method: method, Params: params, ID: json.RawMessage("1")}
	if _, err := c.Write(req.Encode()); err != nil {
		return nil, fmt.Errorf("rpc socket %s: %w", path, err)
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *Error          `json:"error"`
	}
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("rpc socket %s: reading the response to %s: %w", path, method, err)
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	if resp.Result == nil {
		return nil, errors.New("response has neither result nor error")
	}
	return resp.Result, nil
}
