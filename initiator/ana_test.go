package initiator

import (
	"strings"
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
)

// TestANALogSize: the ANA log buffer is sized from the target's Identify
// data, and a size past one command's transfer is refused before any
// allocation (a hostile NN of 2^32-1 would ask for 16 GiB).
func TestANALogSize(t *testing.T) {
	for _, c := range []struct {
		id         nvmeof.IdentifyController
		groupsOnly bool
		want       int
		err        string
	}{
		{nvmeof.IdentifyController{NANAGRPID: 32, NN: 1024}, false, 16 + 32*32 + 4*1024, ""},
		{nvmeof.IdentifyController{NANAGRPID: 32, NN: 1024, MNAN: 4096}, false, 16 + 32*32 + 4*4096, ""},
		{nvmeof.IdentifyController{NANAGRPID: 1, NN: 1<<32 - 1}, true, 16 + 32, ""},
		{nvmeof.IdentifyController{NANAGRPID: 1, NN: 1<<32 - 1}, false, 0, "more than one command carries"},
		{nvmeof.IdentifyController{NANAGRPID: 1<<32 - 1}, true, 0, "more than one command carries"},
	} {
		n, err := anaLogSize(c.id, c.groupsOnly, 8<<20)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: %d, %v; want an error %q", c.id, n, err, c.err)
			}
			continue
		}
		if err != nil || n != c.want {
			t.Errorf("NANAGRPID %d NN %d MNAN %d groupsOnly %v: %d, %v; want %d", c.id.NANAGRPID, c.id.NN, c.id.MNAN, c.groupsOnly, n, err, c.want)
		}
	}
}
