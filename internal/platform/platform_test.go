package platform

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrNotSupported(t *testing.T) {
	err := fmt.Errorf("open: needs Linux: %w", ErrNotSupported)
	if !errors.Is(err, ErrNotSupported) || !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("%v: not ErrNotSupported and errors.ErrUnsupported", err)
	}
	if got := err.Error(); got != "open: needs Linux: not supported" {
		t.Errorf("message %q", got)
	}
	u := fmt.Errorf("dial: %w: no device", Unavailable("RDMA unavailable"))
	if !errors.Is(u, ErrNotSupported) || !errors.Is(u, errors.ErrUnsupported) || u.Error() != "dial: RDMA unavailable: no device" {
		t.Errorf("%v: want ErrNotSupported and the message as given", u)
	}
	if errors.Is(errors.New("not supported"), ErrNotSupported) {
		t.Error("another error with the same text is ErrNotSupported")
	}
}
