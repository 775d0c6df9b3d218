package backend

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/platform"
	"github.com/flashpath/flashpath/internal/testutil"
	"golang.org/x/sys/unix"
)

// fileDirs returns the directories to test regular files in: the test's
// temporary directory and, where it exists, a tmpfs one (/dev/shm), whose
// O_DIRECT support differs.
func fileDirs(t *testing.T) map[string]string {
	dirs := map[string]string{"tempdir": t.TempDir()}
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) == nil && st.Type == unix.TMPFS_MAGIC && unix.Access("/dev/shm", unix.W_OK) == nil {
		d, err := os.MkdirTemp("/dev/shm", "backend-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			dirs["tmpfs"] = d
		}
	}
	return dirs
}

func openTestFile(t *testing.T, path string, opts FileOptions) *File {
	t.Helper()
	f, err := OpenFile(path, opts)
	if err != nil {
		t.Fatalf("OpenFile(%s, %+v): %v", path, opts, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFile(t *testing.T) {
	for dname, dir := range fileDirs(t) {
		for _, buffered := range []bool{false, true} {
			for _, bs := range []int{512, 4096} {
				name := dname + "/direct"
				if buffered {
					name = dname + "/buffered"
				}
				t.Run(name+"/"+formatSize(int64(bs)), func(t *testing.T) {
					path := filepath.Join(dir, strings.ReplaceAll(name, "/", "-")+formatSize(int64(bs))+".img")
					f := openTestFile(t, path, FileOptions{Size: 8 << 20, BlockSize: bs, Buffered: buffered})
					if buffered && f.Direct() {
						t.Fatal("Direct() = true with Buffered set")
					}
					t.Logf("direct=%v memAlign=%d", f.Direct(), f.memAlign)
					if f.Size() != 8<<20 || f.BlockSize() != bs || f.Kind() != "file" || !f.VolatileWriteCache() {
						t.Fatalf("size %d, bs %d, kind %q, vwc %v", f.Size(), f.BlockSize(), f.Kind(), f.VolatileWriteCache())
					}
					if st, err := os.Stat(path); err != nil || st.Size() != 8<<20 {
						t.Fatalf("file on disk: %v, %v; want 8MiB", st, err)
					}
					conformance(t, f, true)
					checkNoAllocs(t, f)
				})
			}
		}
	}
}

// Data written and flushed is there after Close and a reopen, which takes
// the size from the file.
func TestFileSurvivesRestart(t *testing.T) {
	for dname, dir := range fileDirs(t) {
		path := filepath.Join(dir, "ns.img")
		f, err := OpenFile(path, FileOptions{Size: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		want := alignedBuf(64<<10, 4096)
		for i := range want {
			want[i] = byte(i*7 + 1)
		}
		if err := f.WriteAt(want, 128<<10, false); err != nil {
			t.Fatal(err)
		}
		if err := f.WriteAt(want[:4096], 0, true); err != nil {
			t.Fatal(err)
		}
		if err := f.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		f = openTestFile(t, path, FileOptions{})
		if f.Size() != 1<<20 {
			t.Fatalf("%s: reopened size %d, want 1MiB", dname, f.Size())
		}
		got := alignedBuf(64<<10, 4096)
		if err := f.ReadAt(got, 128<<10); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: data after reopen differs (err %v)", dname, err)
		}
		if err := f.ReadAt(got[:4096], 0); err != nil || !bytes.Equal(got[:4096], want[:4096]) {
			t.Fatalf("%s: FUA data after reopen differs (err %v)", dname, err)
		}
	}
}

// Both FUA paths: pwritev2(RWF_DSYNC), and pwrite plus fdatasync for
// kernels without it.
func TestFileFUA(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fua.img")
	f := openTestFile(t, path, FileOptions{Size: 1 << 20})
	p := alignedBuf(8192, 4096)
	for _, noRWF := range []bool{false, true} {
		f.noRWF.Store(noRWF)
		for i := range p {
			p[i] = byte(i) ^ 0x3c
			if noRWF {
				p[i] ^= 0xff
			}
		}
		if err := f.WriteAt(p, 4096, true); err != nil {
			t.Fatalf("noRWF=%v: WriteAt(fua): %v", noRWF, err)
		}
		onDisk, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(onDisk[4096:4096+8192], p) {
			t.Fatalf("noRWF=%v: file content after FUA write differs", noRWF)
		}
	}
}

// A buffer that O_DIRECT cannot take goes through the bounce buffers,
// including I/O larger than one of them.
func TestFileUnalignedBuffer(t *testing.T) {
	dir := t.TempDir()
	testutil.SkipIfNotSupported(t, testutil.DirectIO(dir))
	f := openTestFile(t, filepath.Join(dir, "unaligned.img"), FileOptions{Size: 4 << 20})
	if !f.Direct() {
		t.Fatal("the file fell back from O_DIRECT where the file system takes it")
	}
	for _, n := range []int{512, 4096, 3*bounceSize + 4096} {
		raw := alignedBuf(n+1, 4096)
		p := raw[1 : n+1] // misaligned by one byte
		for i := range p {
			p[i] = byte(i%251 + 1)
		}
		if err := f.WriteAt(p, 512, n == 4096); err != nil {
			t.Fatalf("WriteAt(%d unaligned bytes): %v", n, err)
		}
		got := alignedBuf(n+3, 4096)[3 : n+3]
		if err := f.ReadAt(got, 512); err != nil {
			t.Fatalf("ReadAt(%d unaligned bytes): %v", n, err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("%d bytes through the bounce path read back different", n)
		}
	}
	// After warm-up the bounce path does not allocate either (sync.Pool
	// drops items at random under the race detector).
	p := alignedBuf(4097, 4096)[1:]
	if a := testing.AllocsPerRun(50, func() { _ = f.WriteAt(p, 0, false); _ = f.ReadAt(p, 0) }); a > 0.1 && !raceEnabled {
		t.Errorf("bounce path allocates %v times per write+read", a)
	}
}

// Every way of zeroing works, including the fallbacks.
func TestFileZeroFallbacks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zero.img")
	f := openTestFile(t, path, FileOptions{Size: 1 << 20})
	ones := bytes.Repeat([]byte{0xee}, 256<<10)
	for step := int32(0); step < 3; step++ {
		for _, discard := range []bool{false, true} {
			if err := f.WriteAt(ones, 0, false); err != nil {
				t.Fatal(err)
			}
			f.zeroStep.Store(step)
			f.discStep.Store(step)
			var err error
			if discard {
				err = f.Discard(4096+512, 128<<10)
			} else {
				err = f.WriteZeroes(4096+512, 128<<10)
			}
			if err != nil {
				t.Fatalf("step %d discard=%v: %v", step, discard, err)
			}
			got := make([]byte, len(ones))
			if err := f.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			for i, c := range got {
				want := byte(0xee)
				if i >= 4096+512 && i < 4096+512+128<<10 {
					want = 0
				}
				if c != want {
					t.Fatalf("step %d discard=%v: byte %d = %#x, want %#x", step, discard, i, c, want)
				}
			}
		}
	}
}

// Blocks beyond the end of a file that shrank read as zeros.
func TestFileShortReadsZeros(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "short.img")
		f := openTestFile(t, path, FileOptions{Size: 64 << 10, Buffered: buffered})
		p := bytes.Repeat([]byte{0x77}, 64<<10)
		if err := f.WriteAt(p, 0, false); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, 8192+100); err != nil { // mid-block
			t.Fatal(err)
		}
		got := bytes.Repeat([]byte{0xff}, 64<<10)
		if err := f.ReadAt(got, 0); err != nil {
			t.Fatalf("buffered=%v: ReadAt across EOF: %v", buffered, err)
		}
		for i, c := range got {
			want := byte(0)
			if i < 8192+100 {
				want = 0x77
			}
			if c != want {
				t.Fatalf("buffered=%v: byte %d = %#x, want %#x", buffered, i, c, want)
			}
		}
		if err := f.ReadAt(got[:4096], 32<<10); err != nil || !bytes.Equal(got[:4096], make([]byte, 4096)) {
			t.Fatalf("buffered=%v: ReadAt wholly past EOF: %v, or not zeros", buffered, err)
		}
	}
}

func TestFileOpenErrors(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.img")
	if err := os.WriteFile(existing, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.img")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		opts FileOptions
		want string
	}{
		{filepath.Join(dir, "missing"), FileOptions{}, "size missing and file does not exist: give a size, e.g. file:"},
		{filepath.Join(dir, "missing"), FileOptions{Size: 4096, ReadOnly: true}, "read-only backend cannot create it"},
		{filepath.Join(dir, "nodir", "x"), FileOptions{Size: 4096}, "no such file or directory"},
		{dir, FileOptions{}, "not a regular file or block device"},
		{"/dev/null", FileOptions{}, "not a regular file or block device"},
		{empty, FileOptions{}, "holds no whole 512-byte block: give a size"},
		{existing, FileOptions{Size: 1000}, "not a multiple of the block size 512"},
		{existing, FileOptions{BlockSize: 2048}, "use 512 or 4096"},
		{existing, FileOptions{Size: -1}, "give a positive size"},
		// Refused before the file is made, or removed again: a start that
		// fails leaves no badly sized file behind.
		{filepath.Join(dir, "new.img"), FileOptions{Size: 1500000}, "not a multiple of the block size 512"},
		{filepath.Join(dir, "new4k.img"), FileOptions{Size: 6144, BlockSize: 4096}, "not a multiple of the block size 4096"},
		{filepath.Join(dir, "huge.img"), FileOptions{Size: 1 << 62}, "extend to"},
	} {
		f, err := OpenFile(c.path, c.opts)
		if err == nil {
			f.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("OpenFile(%s, %+v): %v; want an error containing %q", c.path, c.opts, err, c.want)
		}
	}
	for _, name := range []string{"new.img", "new4k.img", "huge.img"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a refused OpenFile left %s behind (%v)", name, err)
		}
	}
	_, err := OpenFile(filepath.Join(dir, "nodir", "x"), FileOptions{Size: 4096})
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, unix.ENOENT) {
		t.Errorf("OpenFile in a missing directory: %v does not wrap ENOENT", err)
	}

	// A longer file is served up to the size asked, and not shrunk.
	f := openTestFile(t, existing, FileOptions{Size: 4096})
	if f.Size() != 4096 {
		t.Errorf("Size() = %d, want 4096", f.Size())
	}
	if st, _ := os.Stat(existing); st.Size() != 8192 {
		t.Errorf("file shrank to %d bytes", st.Size())
	}
}

func TestFileReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro.img")
	if err := os.WriteFile(path, bytes.Repeat([]byte{9}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	f := openTestFile(t, path, FileOptions{ReadOnly: true})
	if !f.ReadOnly() {
		t.Fatal("ReadOnly() = false")
	}
	p := alignedBuf(4096, 4096)
	if err := f.ReadAt(p, 4096); err != nil || p[0] != 9 {
		t.Fatalf("ReadAt: %v, byte %d", err, p[0])
	}
	for name, err := range map[string]error{
		"WriteAt":     f.WriteAt(p, 0, false),
		"WriteZeroes": f.WriteZeroes(0, 4096),
		"Discard":     f.Discard(0, 4096),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only file: %v, want ErrReadOnly", name, err)
		}
	}
	if err := f.Flush(); err != nil {
		t.Errorf("Flush on a read-only file: %v", err)
	}
}

// The errno of a failed I/O stays visible through errors.Is, for the core's
// mapping to NVMe status codes.
func TestFileErrnoVisible(t *testing.T) {
	path := filepath.Join(t.TempDir(), "errno.img")
	f := openTestFile(t, path, FileOptions{Size: 1 << 20})
	// Swap the backend's descriptor for a read-only one: writes fail EBADF.
	ro, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ro)
	if err := unix.Dup3(ro, f.fd, unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	p := alignedBuf(4096, 4096)
	for _, fua := range []bool{false, true} {
		err := f.WriteAt(p, 0, fua)
		if !errors.Is(err, unix.EBADF) {
			t.Errorf("WriteAt(fua=%v) on a read-only descriptor: %v, want EBADF", fua, err)
		}
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Path != path {
			t.Errorf("WriteAt(fua=%v): %v is not a *PathError naming %s", fua, err, path)
		}
	}
	if err := f.WriteZeroes(0, 8192); !errors.Is(err, unix.EBADF) {
		t.Errorf("WriteZeroes on a read-only descriptor: %v, want EBADF", err)
	}
}

// losetup attaches a loop device to a new file of size bytes with the
// given sector size. It skips the test where this machine has no loop
// devices for it (not root, no loop driver) and fails it on any other
// error.
func losetup(t *testing.T, size int64, sectorSize int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testutil.SkipIfNotSupported(t, fmt.Errorf("loop devices need root: %w", platform.ErrNotSupported))
	}
	if _, err := os.Stat("/dev/loop-control"); errors.Is(err, fs.ErrNotExist) {
		testutil.SkipIfNotSupported(t, fmt.Errorf("no loop driver (/dev/loop-control): %w", platform.ErrNotSupported))
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Fatalf("losetup: %v (apt-get install util-linux; make deps does)", err)
	}
	img := filepath.Join(t.TempDir(), "loop.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", "--sector-size", strconv.Itoa(sectorSize), img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v: %s", dev, err, out)
		}
	})
	return dev
}

func TestBlockDevice(t *testing.T) {
	for _, sector := range []int{512, 4096} {
		t.Run(formatSize(int64(sector)), func(t *testing.T) {
			dev := losetup(t, 8<<20, sector)
			b, err := Parse(dev)
			if err != nil {
				t.Fatalf("Parse(%s): %v", dev, err)
			}
			f := b.(*File)
			if f.Kind() != "block" || f.Size() != 8<<20 || f.BlockSize() != sector {
				t.Fatalf("%s: kind %q, size %d, bs %d; want block, 8MiB, %d", dev, f.Kind(), f.Size(), f.BlockSize(), sector)
			}
			t.Logf("direct=%v memAlign=%d", f.Direct(), f.memAlign)
			conformance(t, f, true)
			checkNoAllocs(t, f)
			// The fallback to BLKZEROOUT for Discard.
			if err := f.WriteZeroes(0, f.Size()); err != nil {
				t.Fatal(err)
			}
			f.discStep.Store(1)
			conformance(t, f, true)

			// The device is held exclusively while open.
			if _, err := OpenFile(dev, FileOptions{}); err == nil || !strings.Contains(err.Error(), "device is in use") || !errors.Is(err, unix.EBUSY) {
				t.Errorf("second OpenFile(%s): %v, want EBUSY, in use", dev, err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenFile(dev, FileOptions{Size: 16 << 20}); err == nil || !strings.Contains(err.Error(), "the device holds 8MiB") {
				t.Errorf("OpenFile(%s, 16MiB): %v, want a size error", dev, err)
			}
			if sector == 4096 {
				if _, err := OpenFile(dev, FileOptions{BlockSize: 512}); err == nil || !strings.Contains(err.Error(), "4096-byte logical blocks") {
					t.Errorf("OpenFile(%s, bs 512): %v, want a block size error", dev, err)
				}
			}
		})
	}
}

// A file exported read-only is served whole: a size that is not a multiple
// of the block size rounds up, and the last block reads the file's tail
// followed by zeros (a checkpoint shard's last tensor ends there).
func TestFileReadOnlyPartialBlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shard.safetensors")
	data := bytes.Repeat([]byte{7}, 4096+100)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f := openTestFile(t, path, FileOptions{ReadOnly: true, BlockSize: 512})
	if f.Size() != 4096+512 {
		t.Fatalf("Size() = %d, want %d", f.Size(), 4096+512)
	}
	p := alignedBuf(512, 4096)
	if err := f.ReadAt(p, 4096); err != nil {
		t.Fatal(err)
	}
	want := append(bytes.Repeat([]byte{7}, 100), make([]byte, 412)...)
	if !bytes.Equal(p, want) {
		t.Fatalf("last block: % x..., want 100 bytes of 07 then zeros", p[95:110])
	}
	rw := openTestFile(t, path, FileOptions{BlockSize: 512})
	if rw.Size() != 4096 {
		t.Errorf("read-write Size() = %d, want 4096 (whole blocks only)", rw.Size())
	}
}

// TestFileSendSourceCached: a buffered file hands a read to sendfile only
// where the page cache holds all of it; the copying read that fills the
// cache makes the next one go by sendfile. O_DIRECT files never do.
func TestFileSendSourceCached(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ns.img")
	data := bytes.Repeat([]byte("cachestat"), 1<<18)[:2<<20]
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path, FileOptions{Buffered: true, ReadOnly: true, SyncIO: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.SendSource(0, 1<<20); !ok {
		t.Fatal("SendSource refused a range just written (in the page cache)")
	}
	// Evict the clean pages; where that is not possible (tmpfs) or the
	// kernel cannot tell (no cachestat before Linux 6.5), skip.
	if err := unix.Fdatasync(f.fd); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(f.fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	r := unix.CachestatRange{Off: 0, Len: 2 << 20}
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(f.fd), &r, &st, 0); err != nil || st.Cache != 0 {
		t.Skipf("cannot evict the file's pages here (cachestat: %v, %d pages cached)", err, st.Cache)
	}
	if _, ok := f.SendSource(0, 1<<20); ok {
		t.Fatal("SendSource handed an uncached range to sendfile")
	}
	buf := make([]byte, 1<<20)
	if err := f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, data[:1<<20]) {
		t.Fatalf("ReadAt: %v, or its data differs", err)
	}
	if _, ok := f.SendSource(0, 1<<20); !ok {
		t.Fatal("SendSource refused a range the copying read brought into the cache")
	}

	d, err := OpenFile(path, FileOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, ok := d.SendSource(0, 1<<20); ok && d.Direct() {
		t.Fatal("SendSource handed an O_DIRECT file's read to sendfile")
	}
}
