package initiator

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/nvmeof"
)

// In-band authentication (DH-HMAC-CHAP, NVMe Base 2.0 §8.13.5) on every
// queue whose Connect response asks for it, as the Linux host does with
// nvme connect --dhchap-secret. With a controller secret the host
// authenticates even when the target does not ask: the point of a
// controller secret is that a target which cannot prove it holds it is
// refused.

// authKeys are the parsed secrets of Options.
type authKeys struct {
	key, ctrl *dhchap.Secret
}

func (o *Options) parseAuth() (authKeys, error) {
	var k authKeys
	for _, s := range []struct {
		name, v string
		dst     **dhchap.Secret
	}{{"DHCHAPSecret", o.DHCHAPSecret, &k.key}, {"DHCHAPCtrlSecret", o.DHCHAPCtrlSecret, &k.ctrl}} {
		if s.v == "" {
			continue
		}
		sec, err := dhchap.ParseSecret(s.v)
		if err != nil {
			return k, fmt.Errorf("%s: %w", s.name, err)
		}
		*s.dst = &sec
	}
	if k.ctrl != nil && k.key == nil {
		return k, errors.New("DHCHAPCtrlSecret without DHCHAPSecret: bidirectional authentication needs the host's secret too (--dhchap-secret)")
	}
	return k, nil
}

var authTID atomic.Uint32

// keys returns the parsed secrets the controller authenticates with now.
func (c *Controller) keys() (authKeys, error) {
	c.authMu.Lock()
	o := c.cfg.Options
	c.authMu.Unlock()
	return o.parseAuth()
}

// Reauthenticate runs a new DH-HMAC-CHAP transaction on every queue with
// the given secrets (as writing /sys/class/nvme/nvmeX/dhchap_secret does on
// Linux), which also serve any later reconnect: how a host rotates its
// key once the target has the new one. I/O continues meanwhile; a failure
// leaves the queues unable to run commands until a transaction succeeds.
func (c *Controller) Reauthenticate(ctx context.Context, secret, ctrlSecret string) error {
	o := Options{DHCHAPSecret: secret, DHCHAPCtrlSecret: ctrlSecret}
	if _, err := o.parseAuth(); err != nil {
		return err
	}
	if secret == "" {
		return errors.New("reauthenticate: no secret given")
	}
	c.authMu.Lock()
	c.cfg.DHCHAPSecret, c.cfg.DHCHAPCtrlSecret = secret, ctrlSecret
	c.authMu.Unlock()
	s := c.sess()
	if s == nil {
		return errors.New("reauthenticate: not connected")
	}
	for _, q := range append([]*Queue{s.admin}, s.io...) {
		if err := c.authenticate(ctx, q, c.cfg.SubNQN, nvmeof.ConnectAuthATR); err != nil {
			return err
		}
	}
	return nil
}

// authenticate runs a DH-HMAC-CHAP transaction on q after Connect.
func (c *Controller) authenticate(ctx context.Context, q *Queue, subnqn string, dw0 uint32) error {
	keys, err := c.keys()
	if err != nil {
		return err
	}
	required := dw0&nvmeof.ConnectAuthATR != 0
	switch {
	case dw0&nvmeof.ConnectAuthASCR != 0:
		return fmt.Errorf("connect queue %d to %s (subsystem %s): the target requires authentication with a secure channel (TLS concatenation), which flashpath's host does not offer", q.qid, c.addr, subnqn)
	case required && keys.key == nil:
		return fmt.Errorf("connect queue %d to %s (subsystem %s): the target requires DH-HMAC-CHAP authentication: give the host's secret (--dhchap-secret, from nvme gen-dhchap-key) that the target has for %s", q.qid, c.addr, subnqn, c.cfg.HostNQN)
	case !required && (keys.ctrl == nil || subnqn == nvmeof.DiscoveryNQN):
		// Nothing asked for; a discovery controller holds no keys (its
		// log is no secret), so the controller secret is not for it.
		return nil
	}
	h := dhchap.NewHost(dhchap.HostConfig{HostNQN: c.cfg.HostNQN, SubNQN: subnqn, Key: *keys.key, CtrlKey: keys.ctrl}, uint16(authTID.Add(1)))
	fail := func(err error) error {
		var f *dhchap.Failure
		if errors.As(err, &f) && !f.Remote {
			// Tell the controller why the host gives up.
			_ = c.authSend(ctx, q, h.Failure2(err))
		}
		hint := "check that the host's secret (--dhchap-secret) is the one the target has for " + c.cfg.HostNQN
		if keys.ctrl != nil {
			hint += ", and the controller secret (--dhchap-ctrl-secret) the one the target holds"
		}
		return fmt.Errorf("authenticate queue %d to %s (subsystem %s): %w: %s", q.qid, c.addr, subnqn, err, hint)
	}
	if err := c.authSend(ctx, q, h.Negotiate()); err != nil {
		return fail(err)
	}
	msg, err := c.authReceive(ctx, q)
	if err != nil {
		return fail(err)
	}
	reply, err := h.Challenge(msg)
	if err != nil {
		return fail(err)
	}
	if err := c.authSend(ctx, q, reply); err != nil {
		return fail(err)
	}
	if msg, err = c.authReceive(ctx, q); err != nil {
		return fail(err)
	}
	next, err := h.Success1(msg)
	if err != nil {
		return fail(err)
	}
	if next != nil {
		if err := c.authSend(ctx, q, next); err != nil {
			return fail(err)
		}
	}
	if q.qid == 0 {
		hash, group := h.Negotiation()
		c.log.Info("authenticated", "hash", hash.String(), "dhgroup", group.String(), "bidirectional", keys.ctrl != nil)
	}
	return nil
}

func (c *Controller) authSend(ctx context.Context, q *Queue, msg []byte) error {
	var sqe nvmeof.SQE
	sqe.SetAuthSend(uint32(len(msg)))
	_, err := q.exec(ctx, "authentication send", &sqe, msg, true)
	return err
}

func (c *Controller) authReceive(ctx context.Context, q *Queue) ([]byte, error) {
	var sqe nvmeof.SQE
	sqe.SetAuthReceive(nvmeof.AuthMaxLength)
	buf := make([]byte, nvmeof.AuthMaxLength)
	if _, err := q.exec(ctx, "authentication receive", &sqe, buf, false); err != nil {
		return nil, err
	}
	return buf, nil
}
