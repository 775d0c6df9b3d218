// Declarations for the parts of the CUDA driver API (cuda.h) and of cuFile
// (cufile.h) that flashpath uses. NVIDIA's headers are not needed to build:
// both libraries are opened at run time with dlopen, and every entry point is
// called through a function pointer resolved with dlsym.
#ifndef FP_CUDA_H
#define FP_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

typedef int CUresult;            // cudaError_enum; 0 is CUDA_SUCCESS
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;

#define FP_CUDA_ERROR_NOT_SUPPORTED 801
#define FP_CUDA_ERROR_NOT_FOUND 500
#define FP_CUDA_ERROR_NOT_READY 600

// cufile.h: CUfileError_t is returned by value.
typedef struct {
	int err;      // CUfileOpError; 0 is CU_FILE_SUCCESS
	CUresult cu_err;
} fp_CUfileError_t;

// cufile.h: CUfileDescr_t.
typedef struct {
	int type;     // CU_FILE_HANDLE_TYPE_OPAQUE_FD = 1
	union {
		int fd;
		void *handle;
	} handle;
	const void *fs_ops;
} fp_CUfileDescr_t;

// cufile.h: CUfileDrvProps_t.
typedef struct {
	struct {
		unsigned int major_version;
		unsigned int minor_version;
		size_t poll_thresh_size;
		size_t max_direct_io_size;
		unsigned int dstatusflags;
		unsigned int dcontrolflags;
	} nvfs;
	unsigned int fflags;
	unsigned int max_device_cache_size;
	unsigned int per_buffer_cache_size;
	unsigned int max_device_pinned_mem_size;
	unsigned int max_batch_io_size;
	unsigned int max_batch_io_timeout_msecs;
} fp_CUfileDrvProps_t;

// cufile.h: CUfileIOParams_t (batch API).
typedef struct {
	int mode;  // CUFILE_BATCH = 1
	union {
		struct {
			void *devPtr_base;
			off_t file_offset;
			off_t devPtr_offset;
			size_t size;
		} batch;
	} u;
	void *fh;
	int opcode; // CUFILE_READ = 0, CUFILE_WRITE = 1
	void *cookie;
} fp_CUfileIOParams_t;

// cufile.h: CUfileIOEvents_t.
typedef struct {
	void *cookie;
	int status; // CUfileStatus_t
	size_t ret;
} fp_CUfileIOEvents_t;

int fp_cuda_load(const char *path, char *err, size_t errlen);
int fp_cufile_load(const char *path, char *err, size_t errlen);
int fp_cuda_has(const char *sym);

CUresult fp_cuInit(unsigned int flags);
CUresult fp_cuDriverGetVersion(int *v);
CUresult fp_cuDeviceGetCount(int *n);
CUresult fp_cuDeviceGet(CUdevice *d, int ordinal);
CUresult fp_cuDeviceGetName(char *name, int len, CUdevice d);
CUresult fp_cuDeviceTotalMem(size_t *bytes, CUdevice d);
CUresult fp_cuDeviceGetAttribute(int *v, int attr, CUdevice d);
CUresult fp_cuDeviceGetPCIBusId(char *id, int len, CUdevice d);
CUresult fp_cuDevicePrimaryCtxRetain(CUcontext *c, CUdevice d);
CUresult fp_cuDevicePrimaryCtxRelease(CUdevice d);
CUresult fp_cuCtxSetCurrent(CUcontext c);
CUresult fp_cuMemAlloc(CUdeviceptr *p, size_t n);
CUresult fp_cuMemFree(CUdeviceptr p);
CUresult fp_cuMemHostAlloc(void **p, size_t n, unsigned int flags);
CUresult fp_cuMemFreeHost(void *p);
CUresult fp_cuMemHostRegister(void *p, size_t n, unsigned int flags);
CUresult fp_cuMemHostUnregister(void *p);
CUresult fp_cuStreamCreate(CUstream *s, unsigned int flags);
CUresult fp_cuStreamDestroy(CUstream s);
CUresult fp_cuStreamSynchronize(CUstream s);
CUresult fp_cuEventCreate(CUevent *e, unsigned int flags);
CUresult fp_cuEventDestroy(CUevent e);
CUresult fp_cuEventSynchronize(CUevent e);
CUresult fp_cuMemcpyHtoD(CUdeviceptr dst, const void *src, size_t n);
CUresult fp_cuMemcpyDtoH(void *dst, CUdeviceptr src, size_t n);
CUresult fp_cuMemsetD8(CUdeviceptr dst, unsigned char v, size_t n);
CUresult fp_cuMemGetHandleForAddressRange(void *handle, CUdeviceptr p, size_t n, int type, unsigned long long flags);
const char *fp_cuGetErrorString(CUresult r);
const char *fp_cuGetErrorName(CUresult r);

// One crossing per chunk: queue the copy on the stream, then record ev.
CUresult fp_h2d_async_record(CUdeviceptr dst, const void *src, size_t n, CUstream s, CUevent ev);
CUresult fp_d2h_async_record(void *dst, CUdeviceptr src, size_t n, CUstream s, CUevent ev);
// One crossing per chunk of the bounce pipeline: queue the copy of one
// staging buffer and record ev after it, then wait for wait (the event of
// the buffer to refill next; NULL for none), its result in *wait_res.
unsigned long long fp_h2d_record_wait(CUdeviceptr dst, const void *src, size_t n, CUstream s, CUevent ev,
                                      CUevent wait);
// cuEventQuery, then cuEventSynchronize if the event is not complete yet.
CUresult fp_event_wait(CUevent ev);

fp_CUfileError_t fp_cuFileDriverOpen(void);
fp_CUfileError_t fp_cuFileDriverClose(void);
fp_CUfileError_t fp_cuFileDriverGetProperties(fp_CUfileDrvProps_t *p);
fp_CUfileError_t fp_cuFileHandleRegister(void **fh, fp_CUfileDescr_t *d);
void fp_cuFileHandleDeregister(void *fh);
fp_CUfileError_t fp_cuFileBufRegister(CUdeviceptr p, size_t n, int flags);
fp_CUfileError_t fp_cuFileBufDeregister(CUdeviceptr p);
ssize_t fp_cuFileRead(void *fh, CUdeviceptr base, size_t n, off_t foff, off_t doff);
ssize_t fp_cuFileWrite(void *fh, CUdeviceptr base, size_t n, off_t foff, off_t doff);
fp_CUfileError_t fp_cuFileBatchIOSetUp(void **b, unsigned nr);
fp_CUfileError_t fp_cuFileBatchIOSubmit(void *b, unsigned nr, fp_CUfileIOParams_t *p, unsigned flags);
fp_CUfileError_t fp_cuFileBatchIOGetStatus(void *b, unsigned min_nr, unsigned *nr, fp_CUfileIOEvents_t *ev, struct timespec *timeout);
void fp_cuFileBatchIODestroy(void *b);
const char *fp_cufile_errstr(int err);

long fp_fake_live(void);
size_t fp_sizeof_io_params(void);
size_t fp_sizeof_io_events(void);

#endif
