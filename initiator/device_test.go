package initiator

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// hostOnly is a transport without DeviceRegistrar.
type hostOnly struct{}

func (hostOnly) Name() string { return "loop" }
func (hostOnly) DialQueue(context.Context, QueueParams) (Link, error) {
	return nil, errors.New("no wire")
}
func (hostOnly) Register([]byte) (Registration, error) { return nil, nil }

// TestRegisterDeviceRefused: a transport that cannot reach device memory
// refuses it with ErrNoDeviceMemory and says what to do instead; memory
// without an address or length is refused before any transport sees it.
func TestRegisterDeviceRefused(t *testing.T) {
	c := &Controller{tr: hostOnly{}}
	_, err := c.RegisterDevice(DeviceMemory{Addr: 0x7f0000000000, Len: 1 << 20, DMABufFD: -1})
	if !errors.Is(err, ErrNoDeviceMemory) {
		t.Fatalf("RegisterDevice over a host-only transport: %v, want ErrNoDeviceMemory", err)
	}
	for _, want := range []string{"loop transport", "0x7f0000000000", "stage the data through host memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	for _, m := range []DeviceMemory{{Addr: 0, Len: 4096, DMABufFD: -1}, {Addr: 0x1000, Len: 0, DMABufFD: -1}} {
		if _, err := c.RegisterDevice(m); err == nil || errors.Is(err, ErrNoDeviceMemory) {
			t.Errorf("RegisterDevice(%+v): %v, want a refusal of the arguments", m, err)
		}
	}
}

// TestDeviceRequest: a request naming device memory reaches the link's
// Prepare with its address and length (and no Buf); one naming both Buf
// and device memory, device memory for a command without data, or more
// than the maximum transfer is refused before the link sees it.
func TestDeviceRequest(t *testing.T) {
	q, l := startFakeQueue(2)
	defer q.Close()
	q.maxXfer = 8192
	done := make(chan *Request, 1)
	r := &Request{Op: OpRead, NSID: 1, NLB: 8, Dev: 0x7f0000001000, DevLen: 4096, Done: done}
	if err := q.Submit(r); err != nil {
		t.Fatal(err)
	}
	if err := (<-done).Error(); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	got := l.last
	l.mu.Unlock()
	if got.Dev != 0x7f0000001000 || got.DevLen != 4096 || got.Buf != nil || got.Len() != 4096 || got.Out {
		t.Fatalf("link saw Dev %#x DevLen %d Buf %d bytes Len %d Out %v; want the device range of a read", got.Dev, got.DevLen, len(got.Buf), got.Len(), got.Out)
	}
	for name, bad := range map[string]Request{
		"Buf and Dev":     {Op: OpWrite, NSID: 1, NLB: 8, Buf: make([]byte, 4096), Dev: 0x1000, DevLen: 4096},
		"flush with Dev":  {Op: OpFlush, NSID: 1, Dev: 0x1000, DevLen: 4096},
		"negative DevLen": {Op: OpRead, NSID: 1, NLB: 8, Dev: 0x1000, DevLen: -1},
		"beyond MaxXfer":  {Op: OpWrite, NSID: 1, NLB: 32, Dev: 0x1000, DevLen: 16384},
	} {
		bad.Done = done
		if err := q.Submit(&bad); !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: Submit = %v, want ErrBadRequest or ErrTooLarge", name, err)
		}
	}
}
