// Package spdk serves SPDK's JSON-RPC for a flashpath target, so that an
// operator's rpc.py scripts (rpc.py -s SOCKET nvmf_create_subsystem ...)
// configure flashpath unchanged.
//
// The wire is SPDK's: JSON-RPC 2.0 over a Unix socket, one JSON object per
// request ({"jsonrpc":"2.0","method":...,"id":...,"params":{...}}), any
// number of requests on one connection, each answered by one object. A
// request that is not valid JSON-RPC is answered with an error and the
// connection stays; a stream that is not JSON at all is answered with a
// parse error (-32700) and closed.
//
// One model: every method that changes the target builds a changed copy of
// the running configuration (target/server.Config) and applies it with
// Server.Update, the path a SIGHUP reload takes, so a failed request
// changes nothing and connected hosts get the same namespace-change
// notices. A bdev created over RPC lives in this package's bdev table
// until nvmf_subsystem_add_ns makes it a namespace of the configuration.
package spdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// JSON-RPC 2.0 error codes, as SPDK's include/spdk/jsonrpc.h names them.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// SPDK answers with a negative errno where a call fails for that
	// reason (spdk_strerror): -ENODEV "No such device" for a missing
	// bdev, -EEXIST "File exists", -EOPNOTSUPP "Operation not supported".
	CodeNoDevice     = -19
	CodeExists       = -17
	CodeNotSupported = -95
	CodeInvalidState = -1
	maxRequestSize   = 4 << 20
)

// Error is a JSON-RPC error object.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message) }

// errorf returns a JSON-RPC error with a formatted message.
func errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Request is one decoded JSON-RPC request.
type Request struct {
	Method string
	// Params is the "params" member as sent (an object or an array), or
	// nil when absent.
	Params json.RawMessage
	// ID is the "id" member as sent (a number, a string or null), or nil
	// for a notification, which gets no response.
	ID json.RawMessage
}

// DecodeRequest decodes one JSON-RPC 2.0 request object. A value that is
// JSON but not a valid request is an *Error with code -32600 (invalid
// request) and, where the request has one, its ID; bytes that are not one
// JSON value are an *Error with code -32700.
func DecodeRequest(b []byte) (Request, *Error) {
	b = bytes.TrimSpace(b)
	if !json.Valid(b) {
		return Request{}, errorf(CodeParseError, "Parse error")
	}
	if len(b) == 0 || b[0] != '{' {
		if len(b) > 0 && b[0] == '[' {
			return Request{}, errorf(CodeInvalidRequest, "Invalid request: batch requests are not supported: send one object per request")
		}
		return Request{}, errorf(CodeInvalidRequest, "Invalid request: want a JSON object with jsonrpc, method and id")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Request{}, errorf(CodeInvalidRequest, "Invalid request: %v", err)
	}
	var r Request
	if id, ok := raw["id"]; ok {
		switch id[0] {
		case '"', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			r.ID = id
		default:
			return Request{}, errorf(CodeInvalidRequest, "Invalid request: id must be a number, a string or null")
		}
	}
	var version string
	if v, ok := raw["jsonrpc"]; !ok || json.Unmarshal(v, &version) != nil || version != "2.0" {
		return r, errorf(CodeInvalidRequest, `Invalid request: "jsonrpc" must be "2.0"`)
	}
	if m, ok := raw["method"]; !ok || json.Unmarshal(m, &r.Method) != nil || r.Method == "" {
		return r, errorf(CodeInvalidRequest, `Invalid request: "method" must be a non-empty string`)
	}
	if p, ok := raw["params"]; ok && string(p) != "null" { // null: as absent
		if p[0] != '{' && p[0] != '[' {
			return r, errorf(CodeInvalidRequest, `Invalid request: "params" must be an object or an array`)
		}
		r.Params = p
	}
	for k := range raw {
		switch k {
		case "jsonrpc", "method", "params", "id":
		default:
			return r, errorf(CodeInvalidRequest, "Invalid request: unknown member %q", k)
		}
	}
	return r, nil
}

// Encode renders r as SPDK's rpc.py sends it.
func (r Request) Encode() []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"jsonrpc":"2.0","method":`)
	m, _ := json.Marshal(r.Method)
	buf.Write(m)
	if r.Params != nil {
		buf.WriteString(`,"params":`)
		buf.Write(r.Params)
	}
	if r.ID != nil {
		buf.WriteString(`,"id":`)
		buf.Write(r.ID)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// response is a JSON-RPC response object.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// encodeResponse renders the response to a request with id (nil: null).
func encodeResponse(id json.RawMessage, result any, rerr *Error) []byte {
	if id == nil {
		id = json.RawMessage("null")
	}
	resp := response{JSONRPC: "2.0", ID: id, Error: rerr}
	if rerr == nil {
		resp.Result = result
		if result == nil {
			resp.Result = true
		}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(response{JSONRPC: "2.0", ID: id, Error: errorf(CodeInternalError, "encode result: %v", err)})
	}
	return append(b, '\n')
}

// decodeParams decodes a method's params object into v, refusing members
// v does not have. A missing params is an empty object.
func decodeParams(params json.RawMessage, v any) *Error {
	if params == nil {
		params = json.RawMessage("{}")
	}
	if params[0] != '{' {
		return errorf(CodeInvalidParams, "Invalid parameters: want an object")
	}
	d := json.NewDecoder(bytes.NewReader(params))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return errorf(CodeInvalidParams, "Invalid parameters: %s: want a JSON %s", te.Field, te.Type)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return errorf(CodeInvalidParams, "Invalid parameters: %s is not a parameter flashpath knows for this method: leave it out", f)
		}
		return errorf(CodeInvalidParams, "Invalid parameters: %v", err)
	}
	if t, ok := v.(interface{ check() *Error }); ok {
		return t.check()
	}
	return nil
}
