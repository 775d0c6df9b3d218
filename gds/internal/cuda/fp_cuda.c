//go:build linux && cgo

// Run-time binding of libcuda and libcufile: dlopen, dlsym, and one C
// wrapper per entry point (cgo cannot call a function pointer directly).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include "fp_cuda.h"

// X(go name, symbol, required, return type, params, args)
#define FP_CUDA_FUNCS(X)                                                                                   \
	X(cuInit, "cuInit", 1, CUresult, (unsigned int a), (a))                                                 \
	X(cuDriverGetVersion, "cuDriverGetVersion", 1, CUresult, (int *a), (a))                                 \
	X(cuDeviceGetCount, "cuDeviceGetCount", 1, CUresult, (int *a), (a))                                     \
	X(cuDeviceGet, "cuDeviceGet", 1, CUresult, (CUdevice * a, int b), (a, b))                               \
	X(cuDeviceGetName, "cuDeviceGetName", 1, CUresult, (char *a, int b, CUdevice c), (a, b, c))             \
	X(cuDeviceTotalMem, "cuDeviceTotalMem_v2", 1, CUresult, (size_t * a, CUdevice b), (a, b))               \
	X(cuDeviceGetAttribute, "cuDeviceGetAttribute", 1, CUresult, (int *a, int b, CUdevice c), (a, b, c))    \
	X(cuDeviceGetPCIBusId, "cuDeviceGetPCIBusId", 1, CUresult, (char *a, int b, CUdevice c), (a, b, c))     \
	X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", 1, CUresult, (CUcontext * a, CUdevice b), (a, b)) \
	X(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2", 1, CUresult, (CUdevice a), (a))           \
	X(cuCtxSetCurrent, "cuCtxSetCurrent", 1, CUresult, (CUcontext a), (a))                                  \
	X(cuMemAlloc, "cuMemAlloc_v2", 1, CUresult, (CUdeviceptr * a, size_t b), (a, b))                        \
	X(cuMemFree, "cuMemFree_v2", 1, CUresult, (CUdeviceptr a), (a))                                         \
	X(cuMemHostAlloc, "cuMemHostAlloc", 1, CUresult, (void **a, size_t b, unsigned int c), (a, b, c))       \
	X(cuMemFreeHost, "cuMemFreeHost", 1, CUresult, (void *a), (a))                                          \
	X(cuMemHostRegister, "cuMemHostRegister_v2", 0, CUresult, (void *a, size_t b, unsigned int c), (a, b, c)) \
	X(cuMemHostUnregister, "cuMemHostUnregister", 0, CUresult, (void *a), (a))                              \
	X(cuStreamCreate, "cuStreamCreate", 1, CUresult, (CUstream * a, unsigned int b), (a, b))                \
	X(cuStreamDestroy, "cuStreamDestroy_v2", 1, CUresult, (CUstream a), (a))                                \
	X(cuStreamSynchronize, "cuStreamSynchronize", 1, CUresult, (CUstream a), (a))                           \
	X(cuEventCreate, "cuEventCreate", 1, CUresult, (CUevent * a, unsigned int b), (a, b))                   \
	X(cuEventDestroy, "cuEventDestroy_v2", 1, CUresult, (CUevent a), (a))                                   \
	X(cuEventRecord, "cuEventRecord", 1, CUresult, (CUevent a, CUstream b), (a, b))                         \
	X(cuEventSynchronize, "cuEventSynchronize", 1, CUresult, (CUevent a), (a))                              \
	X(cuEventQuery, "cuEventQuery", 1, CUresult, (CUevent a), (a))                                          \
	X(cuMemcpyHtoD, "cuMemcpyHtoD_v2", 1, CUresult, (CUdeviceptr a, const void *b, size_t c), (a, b, c))    \
	X(cuMemcpyDtoH, "cuMemcpyDtoH_v2", 1, CUresult, (void *a, CUdeviceptr b, size_t c), (a, b, c))          \
	X(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2", 1, CUresult,                                                \
	  (CUdeviceptr a, const void *b, size_t c, CUstream d), (a, b, c, d))                                   \
	X(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2", 1, CUresult,                                                \
	  (void *a, CUdeviceptr b, size_t c, CUstream d), (a, b, c, d))                                         \
	X(cuMemsetD8, "cuMemsetD8_v2", 1, CUresult, (CUdeviceptr a, unsigned char b, size_t c), (a, b, c))      \
	X(cuMemGetHandleForAddressRange, "cuMemGetHandleForAddressRange", 0, CUresult,                          \
	  (void *a, CUdeviceptr b, size_t c, int d, unsigned long long e), (a, b, c, d, e))

#define FP_CUFILE_FUNCS(X)                                                                                 \
	X(cuFileDriverOpen, "cuFileDriverOpen", 1, fp_CUfileError_t, (void), ())                                \
	X(cuFileDriverGetProperties, "cuFileDriverGetProperties", 1, fp_CUfileError_t,                          \
	  (fp_CUfileDrvProps_t * a), (a))                                                                       \
	X(cuFileHandleRegister, "cuFileHandleRegister", 1, fp_CUfileError_t,                                    \
	  (void **a, fp_CUfileDescr_t *b), (a, b))                                                              \
	X(cuFileBufRegister, "cuFileBufRegister", 1, fp_CUfileError_t, (const void *a, size_t b, int c),        \
	  (a, b, c))                                                                                            \
	X(cuFileBufDeregister, "cuFileBufDeregister", 1, fp_CUfileError_t, (const void *a), (a))                \
	X(cuFileRead, "cuFileRead", 1, ssize_t, (void *a, void *b, size_t c, off_t d, off_t e), (a, b, c, d, e)) \
	X(cuFileWrite, "cuFileWrite", 1, ssize_t, (void *a, const void *b, size_t c, off_t d, off_t e),         \
	  (a, b, c, d, e))                                                                                      \
	X(cuFileBatchIOSetUp, "cuFileBatchIOSetUp", 0, fp_CUfileError_t, (void **a, unsigned b), (a, b))        \
	X(cuFileBatchIOSubmit, "cuFileBatchIOSubmit", 0, fp_CUfileError_t,                                      \
	  (void *a, unsigned b, fp_CUfileIOParams_t *c, unsigned d), (a, b, c, d))                              \
	X(cuFileBatchIOGetStatus, "cuFileBatchIOGetStatus", 0, fp_CUfileError_t,                                \
	  (void *a, unsigned b, unsigned *c, fp_CUfileIOEvents_t *d, struct timespec *e), (a, b, c, d, e))

// Pointers.
#define FP_PTR(name, sym, req, ret, params, args) static ret(*p_##name) params;
FP_CUDA_FUNCS(FP_PTR)
FP_CUFILE_FUNCS(FP_PTR)
static CUresult (*p_cuGetErrorString)(CUresult, const char **);
static CUresult (*p_cuGetErrorName)(CUresult, const char **);
static fp_CUfileError_t (*p_cuFileDriverClose)(void);
static void (*p_cuFileHandleDeregister)(void *);
static void (*p_cuFileBatchIODestroy)(void *);
static void *cuda_lib, *cufile_lib;

// Wrappers for CUresult functions: a missing optional symbol reads as
// CUDA_ERROR_NOT_SUPPORTED.
#define FP_WRAP_CU(name, sym, req, ret, params, args) \
	ret fp_##name params {                              \
		if (!p_##name)                                    \
			return FP_CUDA_ERROR_NOT_SUPPORTED;             \
		return p_##name args;                             \
	}
FP_CUDA_FUNCS(FP_WRAP_CU)

static fp_CUfileError_t fp_cufile_missing(void) {
	fp_CUfileError_t e = {5001 /* CU_FILE_DRIVER_NOT_INITIALIZED */, 0};
	return e;
}

fp_CUfileError_t fp_cuFileDriverOpen(void) { return p_cuFileDriverOpen ? p_cuFileDriverOpen() : fp_cufile_missing(); }
fp_CUfileError_t fp_cuFileDriverClose(void) { return p_cuFileDriverClose ? p_cuFileDriverClose() : fp_cufile_missing(); }
fp_CUfileError_t fp_cuFileDriverGetProperties(fp_CUfileDrvProps_t *a) {
	return p_cuFileDriverGetProperties ? p_cuFileDriverGetProperties(a) : fp_cufile_missing();
}
fp_CUfileError_t fp_cuFileHandleRegister(void **a, fp_CUfileDescr_t *b) {
	return p_cuFileHandleRegister ? p_cuFileHandleRegister(a, b) : fp_cufile_missing();
}
void fp_cuFileHandleDeregister(void *a) {
	if (p_cuFileHandleDeregister)
		p_cuFileHandleDeregister(a);
}
fp_CUfileError_t fp_cuFileBufRegister(CUdeviceptr a, size_t b, int c) {
	return p_cuFileBufRegister ? p_cuFileBufRegister((const void *)(uintptr_t)a, b, c) : fp_cufile_missing();
}
fp_CUfileError_t fp_cuFileBufDeregister(CUdeviceptr a) {
	return p_cuFileBufDeregister ? p_cuFileBufDeregister((const void *)(uintptr_t)a) : fp_cufile_missing();
}
ssize_t fp_cuFileRead(void *a, CUdeviceptr b, size_t c, off_t d, off_t e) {
	return p_cuFileRead ? p_cuFileRead(a, (void *)(uintptr_t)b, c, d, e) : -1;
}
ssize_t fp_cuFileWrite(void *a, CUdeviceptr b, size_t c, off_t d, off_t e) {
	return p_cuFileWrite ? p_cuFileWrite(a, (const void *)(uintptr_t)b, c, d, e) : -1;
}
fp_CUfileError_t fp_cuFileBatchIOSetUp(void **a, unsigned b) {
	return p_cuFileBatchIOSetUp ? p_cuFileBatchIOSetUp(a, b) : fp_cufile_missing();
}
fp_CUfileError_t fp_cuFileBatchIOSubmit(void *a, unsigned b, fp_CUfileIOParams_t *c, unsigned d) {
	return p_cuFileBatchIOSubmit ? p_cuFileBatchIOSubmit(a, b, c, d) : fp_cufile_missing();
}
fp_CUfileError_t fp_cuFileBatchIOGetStatus(void *a, unsigned b, unsigned *c, fp_CUfileIOEvents_t *d, struct timespec *e) {
	return p_cuFileBatchIOGetStatus ? p_cuFileBatchIOGetStatus(a, b, c, d, e) : fp_cufile_missing();
}
void fp_cuFileBatchIODestroy(void *a) {
	if (p_cuFileBatchIODestroy)
		p_cuFileBatchIODestroy(a);
}

const char *fp_cuGetErrorString(CUresult r) {
	const char *s = NULL;
	if (p_cuGetErrorString && p_cuGetErrorString(r, &s) == 0 && s)
		return s;
	return "";
}

const char *fp_cuGetErrorName(CUresult r) {
	const char *s = NULL;
	if (p_cuGetErrorName && p_cuGetErrorName(r, &s) == 0 && s)
		return s;
	return "";
}

CUresult fp_h2d_async_record(CUdeviceptr dst, const void *src, size_t n, CUstream s, CUevent ev) {
	CUresult r = p_cuMemcpyHtoDAsync(dst, src, n, s);
	if (r != 0)
		return r;
	return p_cuEventRecord(ev, s);
}

// fp_wait completes an event: a query first, which costs no sleep when the
// copy is done, then a (blocking-sync) wait.
static CUresult fp_wait(CUevent ev) {
	CUresult r = p_cuEventQuery(ev);
	if (r != FP_CUDA_ERROR_NOT_READY)
		return r;
	return p_cuEventSynchronize(ev);
}

// Both results in one value (copy/record in the low 32 bits, the wait in the
// high 32), so the Go side passes no pointer and allocates nothing.
unsigned long long fp_h2d_record_wait(CUdeviceptr dst, const void *src, size_t n, CUstream s, CUevent ev,
                                      CUevent wait) {
	CUresult wr = 0;
	CUresult r = p_cuMemcpyHtoDAsync(dst, src, n, s);
	if (r == 0)
		r = p_cuEventRecord(ev, s);
	if (wait)
		wr = fp_wait(wait);
	return (unsigned long long)(unsigned int)r | (unsigned long long)(unsigned int)wr << 32;
}

CUresult fp_event_wait(CUevent ev) { return fp_wait(ev); }

CUresult fp_d2h_async_record(void *dst, CUdeviceptr src, size_t n, CUstream s, CUevent ev) {
	CUresult r = p_cuMemcpyDtoHAsync(dst, src, n, s);
	if (r != 0)
		return r;
	return p_cuEventRecord(ev, s);
}

static void *fp_sym(void *lib, const char *sym, int req, const char **missing) {
	void *p = dlsym(lib, sym);
	if (!p && req && !*missing)
		*missing = sym;
	return p;
}

int fp_cuda_load(const char *path, char *err, size_t errlen) {
	if (cuda_lib)
		return 0;
	void *lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (!lib) {
		snprintf(err, errlen, "%s", dlerror());
		return -1;
	}
	const char *missing = NULL;
#define FP_LOAD(name, sym, req, ret, params, args) p_##name = (ret(*) params)fp_sym(lib, sym, req, &missing);
	FP_CUDA_FUNCS(FP_LOAD)
	p_cuGetErrorString = (CUresult(*)(CUresult, const char **))dlsym(lib, "cuGetErrorString");
	p_cuGetErrorName = (CUresult(*)(CUresult, const char **))dlsym(lib, "cuGetErrorName");
	if (missing) {
		snprintf(err, errlen, "%s: symbol %s not found", path, missing);
#define FP_CLEAR(name, sym, req, ret, params, args) p_##name = NULL;
		FP_CUDA_FUNCS(FP_CLEAR)
		dlclose(lib);
		return -2;
	}
	cuda_lib = lib;
	return 0;
}

int fp_cufile_load(const char *path, char *err, size_t errlen) {
	if (cufile_lib)
		return 0;
	void *lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (!lib) {
		snprintf(err, errlen, "%s", dlerror());
		return -1;
	}
	const char *missing = NULL;
	FP_CUFILE_FUNCS(FP_LOAD)
	p_cuFileDriverClose = (fp_CUfileError_t(*)(void))dlsym(lib, "cuFileDriverClose_v2");
	if (!p_cuFileDriverClose)
		p_cuFileDriverClose = (fp_CUfileError_t(*)(void))fp_sym(lib, "cuFileDriverClose", 1, &missing);
	p_cuFileHandleDeregister = (void (*)(void *))fp_sym(lib, "cuFileHandleDeregister", 1, &missing);
	p_cuFileBatchIODestroy = (void (*)(void *))dlsym(lib, "cuFileBatchIODestroy");
	if (missing) {
		snprintf(err, errlen, "%s: symbol %s not found", path, missing);
		FP_CUFILE_FUNCS(FP_CLEAR)
		p_cuFileDriverClose = NULL;
		p_cuFileHandleDeregister = NULL;
		p_cuFileBatchIODestroy = NULL;
		dlclose(lib);
		return -2;
	}
	cufile_lib = lib;
	return 0;
}

int fp_cuda_has(const char *sym) {
	if (strcmp(sym, "cuMemGetHandleForAddressRange") == 0)
		return p_cuMemGetHandleForAddressRange != NULL;
	if (strcmp(sym, "cuFileBatchIOSetUp") == 0)
		return p_cuFileBatchIOSetUp != NULL && p_cuFileBatchIOSubmit != NULL && p_cuFileBatchIOGetStatus != NULL &&
		       p_cuFileBatchIODestroy != NULL;
	return 0;
}

size_t fp_sizeof_io_params(void) { return sizeof(fp_CUfileIOParams_t); }
size_t fp_sizeof_io_events(void) { return sizeof(fp_CUfileIOEvents_t); }

// fp_fake_live reads the leak counter of the test fake (fakecuda.c); -1 with
// the real driver.
long fp_fake_live(void) {
	if (!cuda_lib)
		return -1;
	long (*f)(void) = (long (*)(void))dlsym(cuda_lib, "fakecuda_live");
	return f ? f() : -1;
}
