// A fake libcuda.so.1 for tests on machines without a GPU. "Device memory"
// is host memory, so a CUdeviceptr is a host address. Asynchronous copies are
// really deferred: they run when an event recorded after them, or their
// stream, is synchronized, and they read the source at that time. A pipeline
// that reuses a pinned buffer before its copy completed reads garbage here.
//
// Fault injection by environment:
//   FAKECUDA_NO_DEVICE=1        cuInit fails with CUDA_ERROR_NO_DEVICE
//   FAKECUDA_FAIL_H2D_AFTER=N   the (N+1)th async host-to-device copy fails
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

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
static long live_allocs, live_host, live_streams, live_events;
static int ctx_dummy;

CUresult cuInit(unsigned int f) {
	(void)f;
	return getenv("FAKECUDA_NO_DEVICE") ? 100 : 0;
}
CUresult cuDriverGetVersion(int *v) { *v = 13000; return 0; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return 0; }
CUresult cuDeviceGet(CUdevice *d, int o) {
	if (o != 0)
		return 101; // CUDA_ERROR_INVALID_DEVICE
	*d = o;
	return 0;
}
CUresult cuDeviceGetName(char *name, int len, CUdevice d) { (void)d; snprintf(name, len, "Fake GPU"); return 0; }
CUresult cuDeviceTotalMem_v2(size_t *b, CUdevice d) { (void)d; *b = (size_t)80 << 30; return 0; }
CUresult cuDeviceGetAttribute(int *v, int a, CUdevice d) { (void)a; (void)d; *v = 0; return 0; }
CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice d) { (void)d; snprintf(id, len, "0000:3B:00.0"); return 0; }
CUresult cuDevicePrimaryCtxRetain(void **c, CUdevice d) { (void)d; *c = &ctx_dummy; return 0; }
CUresult cuDevicePrimaryCtxRelease_v2(CUdevice d) { (void)d; return 0; }
CUresult cuCtxSetCurrent(void *c) { (void)c; return 0; }

CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
	void *m = NULL;
	if (posix_memalign(&m, 256, n ? n : 1))
		return 2; // CUDA_ERROR_OUT_OF_MEMORY
	memset(m, 0xA5, n); // device memory is not zeroed
	__atomic_add_fetch(&live_allocs, 1, __ATOMIC_SEQ_CST);
	*p = (CUdeviceptr)(uintptr_t)m;
	return 0;
}
CUresult cuMemFree_v2(CUdeviceptr p) {
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
		if (o->kind == OP_COPY)
			memcpy(o->dst, o->src, o->n);
		else if (o->ev->s == s) {
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
	struct op o = {OP_MARK, NULL, NULL, 0, e};
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
	struct op o = {OP_COPY, (void *)(uintptr_t)d, src, n, NULL};
	push(s, o);
	pthread_mutex_unlock(&mu);
	return 0;
}
CUresult cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr src, size_t n, struct stream *s) {
	pthread_mutex_lock(&mu);
	struct op o = {OP_COPY, d, (const void *)(uintptr_t)src, n, NULL};
	push(s, o);
	pthread_mutex_unlock(&mu);
	return 0;
}
CUresult cuMemGetHandleForAddressRange(void *h, CUdeviceptr p, size_t n, int type, unsigned long long f) {
	(void)p; (void)n; (void)f;
	if (type != 1)
		return 1; // CUDA_ERROR_INVALID_VALUE
	*(int *)h = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return 0;
}
CUresult cuGetErrorName(CUresult r, const char **s) {
	switch (r) {
	case 2: *s = "CUDA_ERROR_OUT_OF_MEMORY"; return 0;
	case 100: *s = "CUDA_ERROR_NO_DEVICE"; return 0;
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
long fakecuda_live(void) { return live_allocs + live_host + live_streams + live_events; }
