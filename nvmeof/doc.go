// Package nvmeof holds the NVMe Base 2.0 and NVMe-oF 1.1 wire formats that
// flashpath speaks: submission and completion queue entries, SGL descriptors,
// status codes, the admin, fabrics and NVM command sets, Identify data
// structures, log pages and the NVMe/TCP PDUs.
//
// It is a leaf package with no I/O. Fixed-size structures are views over
// byte arrays with accessors (parsing does not copy); variable-size
// structures have an encoder that writes into a caller's buffer and a
// decoder that checks every length and returns an error rather than
// panicking. All multi-byte fields are little-endian.
//
// A submission queue entry (NVMe Base 2.0 §4.2):
//
//	 0      1      2      3      4 ... 7   8 ... 15   16 ... 23  24 ........... 39  40 ... 63
//	+------+------+-------------+---------+----------+----------+-----------------+----------+
//	|opcode| flags|     CID     |  NSID   |  CDW2-3  |  MPTR    |  DPTR (SGL1)    | CDW10-15 |
//	+------+------+-------------+---------+----------+----------+-----------------+----------+
//
// A completion queue entry (§4.6):
//
//	 0 ..... 3   4 ..... 7   8 ..... 9  10 .... 11  12 .... 13  14 .............. 15
//	+----------+-----------+-----------+-----------+-----------+--------------------+
//	|   DW0    |    DW1    |  SQHD     |   SQID    |    CID    | status << 1 | phase|
//	+----------+-----------+-----------+-----------+-----------+--------------------+
package nvmeof
