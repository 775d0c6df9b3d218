package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"reflect"
	"testing"
)

// TestUpdate: listeners start and stop at run time; a change that fails
// (an invalid result, a backend that does not open, a port in use)
// changes nothing.
func TestUpdate(t *testing.T) {
	srv, err := Start(&Config{RPCSocket: "/unused"}, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("an empty target with rpc_socket: %v", err)
	}
	defer srv.Shutdown(context.Background())

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	before := srv.Applied()
	for name, change := range map[string]func(*Config) error{
		"change error": func(c *Config) error { return errors.New("no") },
		"invalid":      func(c *Config) error { c.Subsystems = append(c.Subsystems, SubsystemConfig{NQN: "bad"}); return nil },
		"backend": func(c *Config) error {
			c.Listeners = append(c.Listeners, "tcp://127.0.0.1:0")
			c.Subsystems = append(c.Subsystems, SubsystemConfig{NQN: "nqn.2026-11.io.flashpath:u",
				Namespaces: []NamespaceConfig{{Backend: "file:" + filepath.Join(t.TempDir(), "missing", "x.img")}}})
			return nil
		},
		"port in use": func(c *Config) error {
			c.Listeners = append(c.Listeners, "tcp://"+busy.Addr().String())
			c.Subsystems = append(c.Subsystems, SubsystemConfig{NQN: "nqn.2026-11.io.flashpath:u"})
			return nil
		},
	} {
		if err := srv.Update(change); err == nil {
			t.Errorf("%s: no error", name)
		}
		if got := srv.Applied(); !reflect.DeepEqual(got, before) || len(srv.Listeners) != 0 || len(srv.Target.Subsystems()) != 0 {
			t.Errorf("%s: the failed update changed %+v, %d listeners", name, got, len(srv.Listeners))
		}
	}

	l := "tcp://127.0.0.1:0"
	if err := srv.Update(func(c *Config) error { c.Listeners = append(c.Listeners, l); return nil }); err != nil {
		t.Fatal(err)
	}
	addr := srv.ListenerAddr(l)
	c, err := net.Dial("tcp", addr[len("tcp://"):])
	if err != nil {
		t.Fatalf("listener added at run time: %v", err)
	}
	c.Close()
	if err := srv.Update(func(c *Config) error { c.Listeners = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Dial("tcp", addr[len("tcp://"):]); err == nil {
		t.Error("removed listener still accepts")
	}
	if srv.ListenerAddr(l) != "" || len(srv.Listeners) != 0 {
		t.Error("removed listener still recorded")
	}
}
