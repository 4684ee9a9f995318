/* A CUDA driver API program, built against our libcuda.so.1: context,
 * module, allocations, copies, a launch with kernelParams, and lookups
 * through cuGetProcAddress. Prints what the test checks against the
 * daemon's record, and PASS at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cuda_min.h"

#define CHECK(call)                                                      \
    do {                                                                 \
        CUresult rc_ = (call);                                           \
        if (rc_ != CUDA_SUCCESS) {                                       \
            const char *name_ = "?";                                     \
            cuGetErrorName(rc_, &name_);                                 \
            fprintf(stderr, "%s:%d: %s = %d (%s)\n", __FILE__, __LINE__, \
                    #call, rc_, name_);                                  \
            return 1;                                                    \
        }                                                                \
    } while (0)

static const char ptx[] =
    ".version 7.0\n.target sm_50\n.address_size 64\n"
    ".visible .entry scale(.param .u64 p, .param .f32 k, .param .u32 n) { ret; }\n";

typedef CUresult (*mem_alloc_fn)(CUdeviceptr *, size_t);

int main(void) {
    enum { N = 1 << 16 };
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUfunction fn;
    CUdeviceptr d;
    char name[256];
    int version = 0;

    CHECK(cuInit(0));
    CHECK(cuDriverGetVersion(&version));
    CHECK(cuDeviceGet(&dev, 0));
    CHECK(cuDeviceGetName(name, sizeof name, dev));
    printf("device: %s (driver %d)\n", name, version);
    CHECK(cuCtxCreate(&ctx, 0, dev));
    CHECK(cuModuleLoadData(&mod, ptx));
    CHECK(cuModuleGetFunction(&fn, mod, "scale"));

    float *host = malloc(N * sizeof(float));
    float *back = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) host[i] = (float)i * 0.5f;
    CHECK(cuMemAlloc(&d, N * sizeof(float)));
    CHECK(cuMemcpyHtoD(d, host, N * sizeof(float)));

    float k = 3.0f;
    unsigned int n = N;
    void *args[] = {&d, &k, &n};
    CHECK(cuLaunchKernel(fn, N / 256, 1, 1, 256, 1, 1, 0, NULL, args, NULL));
    CHECK(cuCtxSynchronize());
    CHECK(cuMemcpyDtoH(back, d, N * sizeof(float)));
    if (memcmp(host, back, N * sizeof(float)) != 0) {
        fprintf(stderr, "round trip differs\n");
        return 1;
    }
    printf("launched scale(ptr=%llx, k=%g, n=%u)\n", (unsigned long long)d, k, n);

    /* cuGetProcAddress, as cuda-python resolves every entry point. */
    void *pfn = NULL;
    CUdriverProcAddressQueryResult status = -1;
    CHECK(cuGetProcAddress("cuMemAlloc", &pfn, 12000,
                           CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, &status));
    if (pfn != (void *)cuMemAlloc) {
        fprintf(stderr, "cuGetProcAddress(cuMemAlloc) is not cuMemAlloc_v2\n");
        return 1;
    }
    CUdeviceptr e;
    CHECK(((mem_alloc_fn)pfn)(&e, 4096));
    CHECK(cuMemFree(e));
    pfn = (void *)1;
    CUresult rc = cuGetProcAddress("cuNoSuchEntryPoint", &pfn, 12000, 0, &status);
    if (rc != CUDA_ERROR_NOT_FOUND || pfn != NULL ||
        status != CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND) {
        fprintf(stderr, "unknown symbol: rc %d, pfn %p, status %d\n", rc, pfn, status);
        return 1;
    }

    CHECK(cuMemFree(d));
    CHECK(cuCtxDestroy(ctx));
    free(host);
    free(back);
    printf("PASS\n");
    return 0;
}
