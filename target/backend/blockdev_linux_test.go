package backend

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const procDevices = `Character devices:
  1 mem
  4 /dev/vc/0
259 chardev-with-blkext-number
Block devices:
  7 loop
  8 sd
  9 md
 43 nbd
252 nullb
253 device-mapper
254 virtblk
259 blkext
`

func TestBlockDriver(t *testing.T) {
	for _, tc := range []struct {
		major uint32
		want  string
		found bool
	}{
		{259, "blkext", true}, // not the character device of the same number
		{252, "nullb", true},
		{8, "sd", true},
		{1, "", false}, // a character major only
		{300, "", false},
	} {
		got, found := blockDriver(strings.NewReader(procDevices), tc.major)
		if got != tc.want || found != tc.found {
			t.Errorf("major %d: %q %v, want %q %v", tc.major, got, found, tc.want, tc.found)
		}
	}
}

// TestBlockOpenErrors: each refusal of a block device says what to do.
func TestBlockOpenErrors(t *testing.T) {
	for errno, want := range map[unix.Errno]string{
		unix.EBUSY:  "unmount or release it",
		unix.EPERM:  "add DeviceAllow=/dev/x rw with systemctl edit flashpath-target",
		unix.EACCES: "group disk",
	} {
		err := openError("/dev/x", nil, true, &fs.PathError{Op: "open", Path: "/dev/x", Err: errno})
		if !strings.Contains(err.Error(), want) || !errors.Is(err, errno) {
			t.Errorf("%v: %v, want it to say %q and wrap the errno", errno, err, want)
		}
	}
	// A regular file gets no device advice.
	perm := &fs.PathError{Op: "open", Path: "/srv/x.img", Err: unix.EPERM}
	if err := openError("/srv/x.img", nil, false, perm); err.Error() != "file /srv/x.img: open: open /srv/x.img: operation not permitted" {
		t.Errorf("regular file: %v", err)
	}
}

func FuzzBlockDriver(f *testing.F) {
	f.Add(procDevices, uint32(259))
	f.Add("Block devices:\n", uint32(0))
	f.Fuzz(func(t *testing.T, text string, major uint32) {
		name, found := blockDriver(strings.NewReader(text), major)
		if !found && name != "" {
			t.Fatalf("not found, yet named %q", name)
		}
		if found && !strings.Contains(text, name) {
			t.Fatalf("named %q, which the text lacks", name)
		}
	})
}
