/* The guest-side cost of CUDA runtime calls through the shim: calls the
 * shim answers without the daemon (cudaGetLastError, cudaStreamIsCapturing,
 * the runtime's context-local storage lookup) and a deferred (posted)
 * launch. Built against libcudart by benches/benches/runtime_calls.rs,
 * which runs it against the recording test double; each line printed is
 * "name ns_per_call iterations". The fat binary (PTX of one empty kernel)
 * is read from the file named by VCOMPUTE_BENCH_FATBIN and registered as
 * nvcc's host code registers one. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cuda_runtime_api.h>

typedef struct {
    int magic;
    int version;
    const void *data;
    void *filename_or_fatbins;
} fatbin_wrapper;
void **__cudaRegisterFatBinary(void *fatCubin);
void __cudaRegisterFatBinaryEnd(void **fatCubinHandle);
void __cudaRegisterFunction(void **fatCubinHandle, const char *hostFun,
                            char *deviceFun, const char *deviceName,
                            int thread_limit, uint3 *tid, uint3 *bid,
                            dim3 *bDim, dim3 *gDim, int *wSize);

static void empty_stub(void) {}
static fatbin_wrapper wrapper = {0x466243b1, 1, NULL, NULL};

__attribute__((constructor)) static void register_kernels(void)
{
    const char *path = getenv("VCOMPUTE_BENCH_FATBIN");
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f)
        return;
    static char image[1 << 16] __attribute__((aligned(8)));
    size_t n = fread(image, 1, sizeof image, f);
    fclose(f);
    if (n == 0)
        return;
    wrapper.data = image;
    void **h = __cudaRegisterFatBinary(&wrapper);
    __cudaRegisterFunction(h, (const char *)empty_stub, "empty", "empty", -1,
                           NULL, NULL, NULL, NULL, NULL);
    __cudaRegisterFatBinaryEnd(h);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

#define CHECK(call)                                                        \
    do {                                                                   \
        cudaError_t rc_ = (call);                                          \
        if (rc_ != cudaSuccess) {                                          \
            fprintf(stderr, "%s = %d\n", #call, (int)rc_);                 \
            return 1;                                                      \
        }                                                                  \
    } while (0)

/* Best of five runs of `iters` calls of BODY, in ns per call. */
#define TIME(name, iters, BODY)                                            \
    do {                                                                   \
        double best = 1e30;                                                \
        for (int r = 0; r < 5; r++) {                                      \
            double t0 = now();                                             \
            for (long i = 0; i < (iters); i++) {                           \
                BODY;                                                      \
            }                                                              \
            double per = (now() - t0) / (iters);                           \
            if (per < best)                                                \
                best = per;                                                \
        }                                                                  \
        printf("%s %.1f %ld\n", name, best, (long)(iters));                \
    } while (0)

typedef int (*cls_get_fn)(void **value, void *ctx, void *key);
typedef int (*cls_put_fn)(void *ctx, void *key, void *value, void *dtor);
typedef int (*export_fn)(const void **table, const void *uuid);
typedef int (*ctx_get_fn)(void **ctx);

int main(void)
{
    CHECK(cudaFree(0));
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    enum cudaStreamCaptureStatus st;
    volatile int sink = 0;

    TIME("cudaGetLastError", 1000000, sink += cudaGetLastError());
    TIME("cudaStreamIsCapturing", 1000000, sink += cudaStreamIsCapturing(s, &st));

    /* The context-local storage table, as the runtime reaches it. */
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
    export_fn get_table = lib ? (export_fn)dlsym(lib, "cuGetExportTable") : NULL;
    ctx_get_fn get_ctx = lib ? (ctx_get_fn)dlsym(lib, "cuCtxGetCurrent") : NULL;
    static const unsigned char cls_uuid[16] = {0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21,
                                               0xdf, 0x11, 0xa8, 0xc3, 0x68, 0xf3,
                                               0x55, 0xd8, 0x95, 0x93};
    const void **cls = NULL;
    void *ctx = NULL;
    if (!get_table || get_table((const void **)&cls, cls_uuid) != 0 || !get_ctx ||
        get_ctx(&ctx) != 0) {
        fprintf(stderr, "no context-local storage table\n");
        return 1;
    }
    cls_put_fn put = (cls_put_fn)cls[0];
    cls_get_fn get = (cls_get_fn)cls[2];
    static int key;
    if (put(ctx, &key, (void *)0x1234, NULL) != 0)
        return 1;
    void *value = NULL;
    TIME("context-local storage get", 1000000, sink += get(&value, ctx, &key));
    if (value != (void *)0x1234)
        return 1;

    /* Deferred launches: posted into the batch, sent 256 at a time. */
    dim3 grid = {1, 1, 1}, block = {32, 1, 1};
    CHECK(cudaLaunchKernel((const void *)empty_stub, grid, block, NULL, 0, s));
    CHECK(cudaStreamSynchronize(s));
    TIME("cudaLaunchKernel (deferred)", 100000,
         sink += cudaLaunchKernel((const void *)empty_stub, grid, block, NULL, 0, s));
    CHECK(cudaStreamSynchronize(s));
    CHECK(cudaGetLastError());
    return sink == 0 ? 0 : 1;
}
