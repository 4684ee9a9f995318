/* A CUDA driver API program, built against our libcuda.so.1: context,
 * module, allocations, copies, a launch with kernelParams, and lookups
 * through cuGetProcAddress. Prints what the test checks against the
 * daemon's record, and PASS at the end.
 *
 * The kernel scales a vector in place. With VCOMPUTE_EXPECT_KERNELS=1 (a
 * real GPU, native or through the shim) the result must be the scaled
 * vector; otherwise (the recording test double, which runs no kernel) the
 * vector must come back unchanged. */
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
    ".version 7.0\n"
    ".target sm_50\n"
    ".address_size 64\n"
    ".visible .entry scale(.param .u64 p, .param .f32 k, .param .u32 n)\n"
    "{\n"
    "    .reg .pred %p1;\n"
    "    .reg .b32 %r<6>;\n"
    "    .reg .f32 %f<3>;\n"
    "    .reg .b64 %rd<4>;\n"
    "    ld.param.u64 %rd1, [p];\n"
    "    ld.param.f32 %f1, [k];\n"
    "    ld.param.u32 %r1, [n];\n"
    "    mov.u32 %r2, %ctaid.x;\n"
    "    mov.u32 %r3, %ntid.x;\n"
    "    mov.u32 %r4, %tid.x;\n"
    "    mad.lo.s32 %r5, %r2, %r3, %r4;\n"
    "    setp.ge.u32 %p1, %r5, %r1;\n"
    "    @%p1 bra DONE;\n"
    "    cvta.to.global.u64 %rd2, %rd1;\n"
    "    mul.wide.u32 %rd3, %r5, 4;\n"
    "    add.s64 %rd2, %rd2, %rd3;\n"
    "    ld.global.f32 %f2, [%rd2];\n"
    "    mul.f32 %f2, %f2, %f1;\n"
    "    st.global.f32 [%rd2], %f2;\n"
    "DONE:\n"
    "    ret;\n"
    "}\n";

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
    const char *expect = getenv("VCOMPUTE_EXPECT_KERNELS");
    int kernels_run = expect != NULL && strcmp(expect, "1") == 0;
    for (int i = 0; i < N; i++) {
        float want = kernels_run ? host[i] * k : host[i];
        if (back[i] != want) {
            fprintf(stderr, "element %d: %g, expected %g\n", i, back[i], want);
            return 1;
        }
    }
    double sum = 0;
    for (int i = 0; i < N; i++) sum += back[i];
    printf("result checksum %.1f\n", sum);
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
