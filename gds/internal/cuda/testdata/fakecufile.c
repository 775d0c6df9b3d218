// A fake libcufile.so.0 for tests: "device pointers" are host addresses
// (see fakecuda.c), reads and writes are pread/pwrite. By default it reports
// compat mode (no nvidia-fs); FAKECUFILE_NVFS=1 reports true GDS,
// FAKECUFILE_NO_COMPAT=1 reports compat mode disallowed (allow_compat_mode
// false) and, without FAKECUFILE_NVFS, refuses file handles with
// CU_FILE_HANDLE_NOT_REGISTERED as libcufile does, and
// FAKECUFILE_EIO_AT=OFF fails reads that cover file offset OFF with -EIO.
// FAKECUFILE_REFUSE=CODE refuses file handles with that CUfileOpError
// (libcufile refuses with 5027 where udev does not know the volume).
// Batch API: FAKECUFILE_BATCH_NOCOMPAT=1 refuses cuFileBatchIOSetUp with
// CU_FILE_BATCH_NOCOMPAT_ERROR; FAKECUFILE_BATCH_SHORT=1 completes each
// entry with half its bytes.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>
#include <time.h>

typedef struct { int err; int cu_err; } CUfileError_t;
typedef struct {
	int type;
	union { int fd; void *handle; } handle;
	const void *fs_ops;
} CUfileDescr_t;
typedef struct {
	struct {
		unsigned int major_version, minor_version;
		size_t poll_thresh_size, max_direct_io_size;
		unsigned int dstatusflags, dcontrolflags;
	} nvfs;
	unsigned int fflags, max_device_cache_size, per_buffer_cache_size, max_device_pinned_mem_size;
	unsigned int max_batch_io_size, max_batch_io_timeout_msecs;
} CUfileDrvProps_t;
typedef struct {
	int mode;
	union { struct { void *devPtr_base; off_t file_offset; off_t devPtr_offset; size_t size; } batch; } u;
	void *fh;
	int opcode;
	void *cookie;
} CUfileIOParams_t;
typedef struct { void *cookie; int status; size_t ret; } CUfileIOEvents_t;

struct handle { int fd; };
struct batch { unsigned cap, n; CUfileIOEvents_t *ev; };

static int opened;
static CUfileError_t ok(void) { CUfileError_t e = {0, 0}; return e; }
static CUfileError_t fail(int c) { CUfileError_t e = {c, 0}; return e; }

CUfileError_t cuFileDriverOpen(void) { opened++; return ok(); }
CUfileError_t cuFileDriverClose_v2(void) { opened--; return ok(); }
CUfileError_t cuFileDriverGetProperties(CUfileDrvProps_t *p) {
	if (!opened)
		return fail(5001);
	memset(p, 0, sizeof *p);
	if (getenv("FAKECUFILE_NVFS")) {
		p->nvfs.major_version = 2;
		p->nvfs.minor_version = 26;
	}
	p->nvfs.max_direct_io_size = 16384;
	if (!getenv("FAKECUFILE_NO_COMPAT"))
		p->nvfs.dcontrolflags = 1 << 1; // allow compat mode
	p->fflags = 1 << 1;             // batch I/O
	p->max_batch_io_size = 128;
	return ok();
}
CUfileError_t cuFileHandleRegister(void **fh, CUfileDescr_t *d) {
	if (d->type != 1)
		return fail(5030);
	if (getenv("FAKECUFILE_NO_COMPAT") && !getenv("FAKECUFILE_NVFS"))
		return fail(5027); // CU_FILE_HANDLE_NOT_REGISTERED
	if (getenv("FAKECUFILE_REFUSE"))
		return fail(atoi(getenv("FAKECUFILE_REFUSE")));
	struct handle *h = malloc(sizeof *h);
	// Like compat mode, do the I/O through a buffered fd: "device" memory
	// here is unaligned host memory, which O_DIRECT refuses.
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", d->handle.fd);
	int fl = fcntl(d->handle.fd, F_GETFL);
	h->fd = open(path, (fl & O_ACCMODE) | O_CLOEXEC);
	if (h->fd < 0) {
		free(h);
		return fail(5030);
	}
	*fh = h;
	return ok();
}
void cuFileHandleDeregister(void *fh) {
	close(((struct handle *)fh)->fd);
	free(fh);
}
CUfileError_t cuFileBufRegister(const void *p, size_t n, int f) { (void)p; (void)n; (void)f; return ok(); }
CUfileError_t cuFileBufDeregister(const void *p) { (void)p; return ok(); }

static ssize_t rw(int write, void *fh, void *base, size_t n, off_t off, off_t doff) {
	struct handle *h = fh;
	const char *eio = getenv("FAKECUFILE_EIO_AT");
	if (eio && !write && off <= atoll(eio) && atoll(eio) < off + (off_t)n)
		return -EIO;
	char *p = (char *)base + doff;
	size_t done = 0;
	while (done < n) {
		ssize_t r = write ? pwrite(h->fd, p + done, n - done, off + done) : pread(h->fd, p + done, n - done, off + done);
		if (r < 0)
			return done ? (ssize_t)done : -(ssize_t)errno;
		if (r == 0)
			break;
		done += r;
	}
	return done;
}
ssize_t cuFileRead(void *fh, void *b, size_t n, off_t off, off_t doff) { return rw(0, fh, b, n, off, doff); }
ssize_t cuFileWrite(void *fh, const void *b, size_t n, off_t off, off_t doff) { return rw(1, fh, (void *)b, n, off, doff); }

CUfileError_t cuFileBatchIOSetUp(void **b, unsigned nr) {
	if (getenv("FAKECUFILE_BATCH_NOCOMPAT"))
		return fail(5049); // CU_FILE_BATCH_NOCOMPAT_ERROR
	struct batch *x = calloc(1, sizeof *x);
	x->cap = nr;
	x->ev = calloc(nr, sizeof(CUfileIOEvents_t));
	*b = x;
	return ok();
}
CUfileError_t cuFileBatchIOSubmit(void *b, unsigned nr, CUfileIOParams_t *p, unsigned f) {
	(void)f;
	struct batch *x = b;
	if (x->n + nr > x->cap)
		return fail(5029);
	for (unsigned i = 0; i < nr; i++) {
		size_t n = p[i].u.batch.size;
		if (getenv("FAKECUFILE_BATCH_SHORT") && n > 1)
			n /= 2; // complete half: the caller must move the rest
		ssize_t r = rw(p[i].opcode, p[i].fh, p[i].u.batch.devPtr_base, n, p[i].u.batch.file_offset,
		               p[i].u.batch.devPtr_offset);
		CUfileIOEvents_t *e = &x->ev[x->n++];
		e->cookie = p[i].cookie;
		e->status = r < 0 ? 0x40 : 0x10;
		e->ret = (size_t)r;
	}
	return ok();
}
CUfileError_t cuFileBatchIOGetStatus(void *b, unsigned min, unsigned *nr, CUfileIOEvents_t *ev, struct timespec *t) {
	(void)min; (void)t;
	struct batch *x = b;
	unsigned n = x->n < *nr ? x->n : *nr;
	memcpy(ev, x->ev, n * sizeof *ev);
	memmove(x->ev, x->ev + n, (x->n - n) * sizeof *ev);
	x->n -= n;
	*nr = n;
	return ok();
}
CUfileError_t cuFileBatchIOCancel(void *b) { (void)b; return ok(); }
void cuFileBatchIODestroy(void *b) {
	struct batch *x = b;
	free(x->ev);
	free(x);
}
