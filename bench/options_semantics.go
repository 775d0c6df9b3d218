package bench

import "fmt"

// The option values whose meaning lives in the I/O core (verify.go): the
// option table refers to them here, so that the two stay one list.
func init() {
	if s := findSpec("verify"); s != nil {
		s.help = "checksum written into every block and checked when read back, as fio lays it out: " +
			"crc32c (crc32c-intel), crc32, crc64, crc16, crc7, md5, sha1, sha256, sha512, sha3-224, sha3-256, sha3-384, sha3-512, xxhash, meta (header only), pattern (verify_pattern, no header), null; 0 or none: off"
		s.set = setVerify
	}
}

// setVerify sets verify=: fio's names of the checksums the bench has.
func setVerify(j *Job, v string) error {
	switch v {
	case "", "0", "none":
		j.Verify = ""
		return nil
	}
	if _, ok := verifyKinds[v]; !ok {
		return fmt.Errorf("%q: want one of %v, or none", v, VerifyTypes())
	}
	j.Verify = v
	return nil
}
