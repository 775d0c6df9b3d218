// A fake libcuda.so.1 for tests on machines without a GPU. "Device memory"
// is host memory, so a CUdeviceptr is a host address. Asynchronous copies are
// really deferred: they run when an event recorded after them, or their
// stream, is synchronized, and they read the source at that time. A pipeline
// that reuses a pinned buffer before its copy completed reads garbage here.
//
// Fault injection by environment:
//   FAKECUDA_NO_DEVICE=1        cuInit fails with CUDA_ERROR_NO_DEVICE
//   FAKECUDA_DEVICES=N          N GPUs (default 1, at most MAXDEV), each with
//                               its own primary context
//   FAKECUDA_FAIL_H2D_AFTER=N   the (N+1)th async host-to-device copy fails
//   FAKECUDA_NO_HOST_REGISTER=1 cuMemHostRegister unsupported (attributes 99
//                               and 113 read 0, the call fails)
//   FAKECUDA_NO_DMABUF=1        no dma-buf export (attribute 124,
//                               DMA_BUF_SUPPORTED, reads 0 and
//                               cuMemGetHandleForAddressRange fails with
//                               CUDA_ERROR_NOT_SUPPORTED)
//
// cuMemGetHandleForAddressRange wants a page-aligned address and size, as
// the driver does (CUDA_ERROR_INVALID_VALUE otherwise); its dma-buf is a
// memfd of the range's size, which a fake RDMA provider can fstat.
//
// cuMemAlloc_v2 records the device whose context is current on the calling
// thread (cuCtxSetCurrent is per thread, as in the driver);
// fakecuda_alloc_device tells tests which GPU an address was allocated on.
//
// cuMemHostRegister keeps the ranges it was given: a range that is not page
// aligned fails (CUDA_ERROR_INVALID_VALUE), one that overlaps a registered
// range fails as the driver does (CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED),
// and cuMemHostUnregister of a range that a queued copy still reads fails
// (CUDA_ERROR_UNKNOWN): on a GPU the copy would read unpinned memory.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;

enum { OP_COPY, OP_MARK };
struct op {
	int kind;
	void *dst;
	const void *src;
	size_t n;
	struct ev *ev;
	uintptr_t reg; // start of the registered range the copy reads, or 0
};
struct stream {
	struct op *ops;
	size_t len, cap;
};
struct ev {
	struct stream *s;
	int pending;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long h2d_count;
static long live_allocs, live_host, live_streams, live_events, live_regs;

// Registered host ranges [lo, hi), with the number of queued copies reading
// each; guarded by mu.
#define MAXREG 4096
static struct reg {
	uintptr_t lo, hi;
	long readers;
} regs[MAXREG];
static int nregs;

// reg_overlap returns the registered range overlapping [lo, hi), or NULL.
static struct reg *reg_overlap(uintptr_t lo, uintptr_t hi) {
	for (int i = 0; i < nregs; i++)
		if (regs[i].lo < hi && lo < regs[i].hi)
			return &regs[i];
	return NULL;
}
static struct reg *reg_at(uintptr_t lo) {
	for (int i = 0; i < nregs; i++)
		if (regs[i].lo == lo)
			return &regs[i];
	return NULL;
}
// One primary context per device; the current one is per thread.
#define MAXDEV 16
static int ctxs[MAXDEV];
static __thread int *cur_ctx;

// Device allocations [lo, hi) with the device they were made on; guarded
// by mu. Past MAXALLOC live allocations, the rest go unrecorded.
#define MAXALLOC 4096
static struct alloc {
	uintptr_t lo, hi;
	int dev;
} allocs[MAXALLOC];
static int nallocs;

static int ndevices(void) {
	const char *v = getenv("FAKECUDA_DEVICES");
	int n = v ? atoi(v) : 1;
	return n < 1 ? 1 : n > MAXDEV ? MAXDEV : n;
}

CUresult cuInit(unsigned int f) {
	(void)f;
	return getenv("FAKECUDA_NO_DEVICE") ? 100 : 0;
}
CUresult cuDriverGetVersion(int *v) { *v = 13000; return 0; }
CUresult cuDeviceGetCount(int *n) { *n = ndevices(); return 0; }
CUresult cuDeviceGet(CUdevice *d, int o) {
	if (o < 0 || o >= ndevices())
		return 101; // CUDA_ERROR_INVALID_DEVICE
	*d = o;
	return 0;
}
CUresult cuDeviceGetName(char *name, int len, CUdevice d) { (void)d; snprintf(name, len, "Fake GPU"); return 0; }
CUresult cuDeviceTotalMem_v2(size_t *b, CUdevice d) { (void)d; *b = (size_t)80 << 30; return 0; }
CUresult cuDeviceGetAttribute(int *v, int a, CUdevice d) {
	(void)d;
	// 99: HOST_REGISTER_SUPPORTED, 113: READ_ONLY_HOST_REGISTER_SUPPORTED
	*v = (a == 99 || a == 113) && !getenv("FAKECUDA_NO_HOST_REGISTER");
	// 124: DMA_BUF_SUPPORTED
	if (a == 124)
		*v = !getenv("FAKECUDA_NO_DMABUF");
	return 0;
}
CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice d) { snprintf(id, len, "0000:%02X:00.0", 0x3B + d); return 0; }
CUresult cuDevicePrimaryCtxRetain(void **c, CUdevice d) {
	if (d < 0 || d >= ndevices())
		return 101;
	*c = &ctxs[d];
	return 0;
}
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) { (void)d; return 0; }
CUresult cuCtxSetCurrent(void *c) {
	cur_ctx = c;
	return 0;
}

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
	void *m = NULL;
	if (posix_memalign(&m, 256, n ? n : 1))
		return 2; // CUDA_ERROR_OUT_OF_MEMORY
	memset(m, 0xA5, n); // device memory is not zeroed
	__atomic_add_fetch(&live_allocs, 1, __ATOMIC_SEQ_CST);
	*p = (CUdeviceptr)(uintptr_t)m;
	pthread_mutex_lock(&mu);
	if (nallocs < MAXALLOC)
		allocs[nallocs++] = (struct alloc){(uintptr_t)m, (uintptr_t)m + n, cur_ctx ? (int)(cur_ctx - ctxs) : -1};
	pthread_mutex_unlock(&mu);
	return 0;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
	pthread_mutex_lock(&mu);
	for (int i = 0; i < nallocs; i++)
		if (allocs[i].lo == (uintptr_t)p) {
			allocs[i] = allocs[--nallocs];
			break;
		}
	pthread_mutex_unlock(&mu);
	free((void *)(uintptr_t)p);
	__atomic_sub_fetch(&live_allocs, 1, __ATOMIC_SEQ_CST);
	return 0;
}
CUresult cuMemHostAlloc(void **p, size_t n, unsigned int f) {
	(void)f;
	if (posix_memalign(p, 4096, n ? n : 1))
		return 2;
	__atomic_add_fetch(&live_host, 1, __ATOMIC_SEQ_CST);
	return 0;
}
CUresult cuMemFreeHost(void *p) {
	free(p);
	__atomic_sub_fetch(&live_host, 1, __ATOMIC_SEQ_CST);
	return 0;
}

CUresult cuStreamCreate(struct stream **s, unsigned int f) {
	(void)f;
	*s = calloc(1, sizeof(struct stream));
	__atomic_add_fetch(&live_streams, 1, __ATOMIC_SEQ_CST);
	return 0;
}

// run executes the stream's queued ops up to and including upto (or all).
static void run(struct stream *s, struct ev *upto) {
	size_t i = 0;
	for (; i < s->len; i++) {
		struct op *o = &s->ops[i];
		if (o->kind == OP_COPY) {
			memcpy(o->dst, o->src, o->n);
			struct reg *r = o->reg ? reg_at(o->reg) : NULL;
			if (r)
				r->readers--;
		} else if (o->ev->s == s) {
			o->ev->pending = 0;
			if (o->ev == upto) {
				i++;
				break;
			}
		}
	}
	memmove(s->ops, s->ops + i, (s->len - i) * sizeof(struct op));
	s->len -= i;
}

static void push(struct stream *s, struct op o) {
	if (s->len == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->ops = realloc(s->ops, s->cap * sizeof(struct op));
	}
	s->ops[s->len++] = o;
}

CUresult cuStreamSynchronize(struct stream *s) {
	pthread_mutex_lock(&mu);
	run(s, NULL);
	pthread_mutex_unlock(&mu);
	return 0;
}
CUresult cuStreamDestroy_v2(struct stream *s) {
	cuStreamSynchronize(s);
	free(s->ops);
	free(s);
	__atomic_sub_fetch(&live_streams, 1, __ATOMIC_SEQ_CST);
	return 0;
}
CUresult cuEventCreate(struct ev **e, unsigned int f) {
	(void)f;
	*e = calloc(1, sizeof(struct ev));
	__atomic_add_fetch(&live_events, 1, __ATOMIC_SEQ_CST);
	return 0;
}
CUresult cuEventDestroy_v2(struct ev *e) {
	pthread_mutex_lock(&mu);
	if (e->pending && e->s)
		run(e->s, e);
	pthread_mutex_unlock(&mu);
	free(e);
	__atomic_sub_fetch(&live_events, 1, __ATOMIC_SEQ_CST);
	return 0;
}
CUresult cuEventRecord(struct ev *e, struct stream *s) {
	pthread_mutex_lock(&mu);
	e->s = s;
	e->pending = 1;
	struct op o = {OP_MARK, NULL, NULL, 0, e, 0};
	push(s, o);
	pthread_mutex_unlock(&mu);
	return 0;
}
CUresult cuEventQuery(struct ev *e) {
	pthread_mutex_lock(&mu);
	int pending = e->pending;
	pthread_mutex_unlock(&mu);
	return pending ? 600 : 0; // CUDA_ERROR_NOT_READY: deferred copies run on synchronize
}
CUresult cuEventSynchronize(struct ev *e) {
	pthread_mutex_lock(&mu);
	if (e->pending && e->s)
		run(e->s, e);
	pthread_mutex_unlock(&mu);
	return 0;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) { memcpy((void *)(uintptr_t)d, s, n); return 0; }
CUresult cuMemcpyDtoH_v2(void *d, CUdeviceptr s, size_t n) { memcpy(d, (void *)(uintptr_t)s, n); return 0; }
CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) { memset((void *)(uintptr_t)d, v, n); return 0; }

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *src, size_t n, struct stream *s) {
	const char *lim = getenv("FAKECUDA_FAIL_H2D_AFTER");
	long c = __atomic_fetch_add(&h2d_count, 1, __ATOMIC_SEQ_CST);
	if (lim && c >= atol(lim))
		return 999; // CUDA_ERROR_UNKNOWN
	pthread_mutex_lock(&mu);
	struct op o = {OP_COPY, (void *)(uintptr_t)d, src, n, NULL, 0};
	struct reg *r = reg_overlap((uintptr_t)src, (uintptr_t)src + n);
	if (r) {
		if ((uintptr_t)src < r->lo || (uintptr_t)src + n > r->hi) { // runs off the registered range
			pthread_mutex_unlock(&mu);
			return 1;
		}
		r->readers++;
		o.reg = r->lo;
	}
	push(s, o);
	pthread_mutex_unlock(&mu);
	return 0;
}
CUresult cuMemHostRegister_v2(void *p, size_t n, unsigned int f) {
	(void)f;
	if (getenv("FAKECUDA_NO_HOST_REGISTER"))
		return 801; // CUDA_ERROR_NOT_SUPPORTED
	uintptr_t lo = (uintptr_t)p;
	if (lo % 4096 || n % 4096 || n == 0)
		return 1; // CUDA_ERROR_INVALID_VALUE
	pthread_mutex_lock(&mu);
	CUresult rc = 0;
	if (reg_overlap(lo, lo + n))
		rc = 712; // CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED
	else if (nregs == MAXREG)
		rc = 2;
	else {
		regs[nregs++] = (struct reg){lo, lo + n, 0};
		live_regs++;
	}
	pthread_mutex_unlock(&mu);
	return rc;
}
CUresult cuMemHostUnregister(void *p) {
	pthread_mutex_lock(&mu);
	CUresult rc = 0;
	struct reg *r = reg_at((uintptr_t)p);
	if (!r)
		rc = 713; // CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED
	else if (r->readers > 0)
		rc = 999; // a queued copy still reads it
	else {
		*r = regs[--nregs];
		live_regs--;
	}
	pthread_mutex_unlock(&mu);
	return rc;
}
CUresult cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr src, size_t n, struct stream *s) {
	pthread_mutex_lock(&mu);
	struct op o = {OP_COPY, d, (const void *)(uintptr_t)src, n, NULL, 0};
	push(s, o);
	pthread_mutex_unlock(&mu);
	return 0;
}
CUresult cuMemGetHandleForAddressRange(void *h, CUdeviceptr p, size_t n, int type, unsigned long long f) {
	(void)f;
	if (type != 1 || p % 4096 || n == 0 || n % 4096)
		return 1; // CUDA_ERROR_INVALID_VALUE
	if (getenv("FAKECUDA_NO_DMABUF"))
		return 801; // CUDA_ERROR_NOT_SUPPORTED
	int fd = memfd_create("fakecuda-dmabuf", MFD_CLOEXEC);
	if (fd < 0)
		return 999;
	if (ftruncate(fd, (off_t)n)) {
		close(fd);
		return 999;
	}
	*(int *)h = fd;
	return 0;
}
CUresult cuGetErrorName(CUresult r, const char **s) {
	switch (r) {
	case 2: *s = "CUDA_ERROR_OUT_OF_MEMORY"; return 0;
	case 100: *s = "CUDA_ERROR_NO_DEVICE"; return 0;
	case 712: *s = "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED"; return 0;
	case 713: *s = "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED"; return 0;
	case 801: *s = "CUDA_ERROR_NOT_SUPPORTED"; return 0;
	case 999: *s = "CUDA_ERROR_UNKNOWN"; return 0;
	}
	return 1;
}
CUresult cuGetErrorString(CUresult r, const char **s) {
	(void)r;
	*s = "fake error";
	return 0;
}

// Leak counters, read by tests through dlsym.
long fakecuda_live(void) { return live_allocs + live_host + live_streams + live_events + live_regs; }

// fakecuda_alloc_device returns the device whose context was current when
// the live allocation holding p was made: -1 for none current, -2 for an
// address of no recorded allocation.
int fakecuda_alloc_device(CUdeviceptr p) {
	int dev = -2;
	pthread_mutex_lock(&mu);
	for (int i = 0; i < nallocs; i++)
		if (allocs[i].lo <= (uintptr_t)p && (uintptr_t)p < allocs[i].hi) {
			dev = allocs[i].dev;
			break;
		}
	pthread_mutex_unlock(&mu);
	return dev;
}
