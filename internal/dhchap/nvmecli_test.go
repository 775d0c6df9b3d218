package dhchap

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// nvmeCLI returns the path of nvme-cli's nvme, or skips the test.
func nvmeCLI(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("nvme")
	if err != nil {
		t.Skip("nvme-cli is not installed (apt-get install nvme-cli); skipping the interoperability check")
	}
	return path
}

// runNvme runs nvme with args and returns its standard output, failing
// the test when it exits non-zero.
func runNvme(t *testing.T, nvme string, args ...string) string {
	t.Helper()
	out, err := exec.Command(nvme, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("nvme %s: %v %s", strings.Join(args[:1], " "), err, msg)
	}
	return string(out)
}

// nvme-cli writes secrets that ParseSecret reads, and reads the secrets
// that GenerateSecret makes.
func TestNvmeCLI(t *testing.T) {
	nvme := nvmeCLI(t)
	const nqn = "nqn.2014-08.org.example:host1"

	t.Run("gen-dhchap-key", func(t *testing.T) {
		for h := Hash(0); h <= SHA512; h++ {
			out := strings.TrimSpace(runNvme(t, nvme, "gen-dhchap-key", "--hmac", strconv.Itoa(int(h)), "--nqn", nqn))
			s, err := ParseSecret(out)
			if err != nil {
				t.Fatalf("--hmac %d: ParseSecret(nvme's secret): %v", h, err)
			}
			if s.Hash != h || len(s.Key) != max(h.Size(), 32) {
				t.Errorf("--hmac %d: parsed hash %v, %d-byte key; want %v, %d", h, s.Hash, len(s.Key), h, max(h.Size(), 32))
			}
			if s.String() != out {
				t.Errorf("--hmac %d: String() does not reproduce nvme's text", h)
			}
		}
	})

	// With --secret the output is deterministic. nvme-cli stores, for a
	// hash other than 0, the key already transformed with --nqn (the kernel
	// transforms it once more when it uses it).
	t.Run("gen-dhchap-key --secret", func(t *testing.T) {
		for h := Hash(0); h <= SHA512; h++ {
			n := max(h.Size(), 32)
			key := seq(n)
			out := strings.TrimSpace(runNvme(t, nvme, "gen-dhchap-key", "--secret", hex.EncodeToString(key),
				"--key-length", strconv.Itoa(n), "--hmac", strconv.Itoa(int(h)), "--nqn", nqn))
			want := Secret{Hash: h, Key: key}
			if h != 0 {
				want.Key = want.Transform(nqn)
			}
			if out != want.String() {
				t.Errorf("--hmac %d: nvme wrote %q, want %q", h, out, want.String())
			}
		}
	})

	t.Run("check-dhchap-key", func(t *testing.T) {
		crcRE := regexp.MustCompile(`CRC ([0-9a-f]{8})`)
		for h := Hash(0); h <= SHA512; h++ {
			lengths := []int{h.Size()} // nvme-cli wants a transformed key as long as its hash
			if h == 0 {
				lengths = []int{32, 48, 64}
			}
			for _, n := range lengths {
				s, err := GenerateSecret(rand.Reader, h, n)
				if err != nil {
					t.Fatal(err)
				}
				out := runNvme(t, nvme, "check-dhchap-key", "--key", s.String())
				m := crcRE.FindStringSubmatch(out)
				if !strings.Contains(out, "Key is valid") || m == nil {
					t.Fatalf("hash %v, %d bytes: nvme check-dhchap-key said %q", h, n, out)
				}
				if want := fmt.Sprintf("%08x", refCRC32(s.Key)); m[1] != want {
					t.Errorf("hash %v, %d bytes: nvme computed CRC %s, want %s", h, n, m[1], want)
				}
			}
		}
		// The check is worth something: nvme, like ParseSecret, refuses a
		// secret whose CRC is wrong.
		key := seq(32)
		raw := binary.LittleEndian.AppendUint32(key, refCRC32(key)^1)
		bad := "DHHC-1:01:" + base64.StdEncoding.EncodeToString(raw) + ":"
		if err := exec.Command(nvme, "check-dhchap-key", "--key", bad).Run(); err == nil {
			t.Error("nvme check-dhchap-key accepted a secret with a wrong CRC")
		}
		if _, err := ParseSecret(bad); err == nil {
			t.Error("ParseSecret accepted a secret with a wrong CRC")
		}
	})
}
