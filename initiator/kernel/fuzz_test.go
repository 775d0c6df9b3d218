package kernel_test

import (
	"strings"
	"testing"

	"github.com/flashpath/flashpath/initiator/kernel"
)

// FuzzSysfs feeds the parsers of what the kernel writes (the fabrics
// device's reply, sysfs address, block stat) arbitrary text: an answer or
// an error, never a panic.
func FuzzSysfs(f *testing.F) {
	f.Add("instance=3,cntlid=1\n")
	f.Add("traddr=10.0.0.5,trsvcid=4420,src_addr=10.0.0.1")
	f.Add("     120        0     1920       48       60        0      960       33        0      100      81        0        0        0        0\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if inst, cntlid, err := kernel.ParseReply(s); err == nil && inst < 0 {
			t.Fatalf("reply %q: instance %d cntlid %d accepted", s, inst, cntlid)
		}
		a, p := kernel.ParseAddress(s)
		if strings.Contains(a, ",") || strings.Contains(p, ",") {
			t.Fatalf("address %q: %q %q hold a separator", s, a, p)
		}
		if st, err := kernel.ParseStat(s); err == nil && st.ReadBytes%512 != 0 {
			t.Fatalf("stat %q: %+v", s, st)
		}
	})
}
