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

// SaveConfig reads the configuration of the target serving the socket at
// path, as rpc.py save_config does: framework_get_config for each
// subsystem framework_get_subsystems names.
func SaveConfig(ctx context.Context, path string) (*Config, error) {
	res, err := Call(ctx, path, "framework_get_subsystems", nil)
	if err != nil {
		return nil, err
	}
	var subs []frameworkSubsystem
	if err := json.Unmarshal(res, &subs); err != nil {
		return nil, fmt.Errorf("framework_get_subsystems: %w", err)
	}
	c := &Config{Subsystems: []ConfigSubsystem{}}
	for _, sub := range subs {
		params, _ := json.Marshal(map[string]string{"name": sub.Name})
		res, err := Call(ctx, path, "framework_get_config", params)
		if err != nil {
			return nil, fmt.Errorf("framework_get_config %s: %w", sub.Name, err)
		}
		entries := []json.RawMessage{}
		if err := json.Unmarshal(res, &entries); err != nil {
			return nil, fmt.Errorf("framework_get_config %s: %w", sub.Name, err)
		}
		c.Subsystems = append(c.Subsystems, ConfigSubsystem{sub.Name, entries})
	}
	return c, nil
}

// LoadConfigAt sends c's requests in order to the target serving the
// socket at path, as rpc.py load_config does; the first that fails stops
// it, named by its place in c.
func LoadConfigAt(ctx context.Context, path string, c *Config) error {
	return c.each(func(where string, e configEntry) error {
		if _, err := Call(ctx, path, e.Method, e.Params); err != nil {
			return fmt.Errorf("%s %s: %w", where, e.Method, err)
		}
		return nil
	})
}
