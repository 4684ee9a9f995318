/* A CUDA runtime program, built the way nvcc builds one but without nvcc:
 * the kernels are compiled at run time with NVRTC and packed into a fat
 * binary with nvFatbin, which is registered by hand with
 * __cudaRegisterFatBinary/__cudaRegisterFunction as nvcc's host code does.
 * Then it uses the runtime API: allocations, copies both ways (checked),
 * memsets, cudaLaunchKernel and __cudaLaunchKernel, streams, events,
 * cudaMallocAsync, a captured graph, cudaDeviceSynchronize. Every return
 * code is checked; what the daemon must have recorded is printed as
 * "key=value" lines for the test to compare; PASS at the end.
 *
 * Linked against libcudart.so.12 or libcudart_static.a. With
 * VCOMPUTE_EXPECT_KERNELS=1 (a real GPU) kernel results are checked too;
 * the recording test double runs no kernel. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <nvFatbin.h>
#include <nvrtc.h>

#define CHECK(call)                                                          \
    do {                                                                     \
        cudaError_t rc_ = (call);                                            \
        if (rc_ != cudaSuccess) {                                            \
            fprintf(stderr, "%s:%d: %s = %d (%s)\n", __FILE__, __LINE__,     \
                    #call, (int)rc_, cudaGetErrorName(rc_));                 \
            return 1;                                                        \
        }                                                                    \
    } while (0)
#define EXPECT(cond)                                                         \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__,      \
                    #cond);                                                  \
            return 1;                                                        \
        }                                                                    \
    } while (0)

/* What nvcc's host code declares for registration. */
typedef struct {
    int magic;
    int version;
    const void *data;
    void *filename_or_fatbins;
} fatbin_wrapper;
void **__cudaRegisterFatBinary(void *fatCubin);
void __cudaRegisterFatBinaryEnd(void **fatCubinHandle);
void __cudaUnregisterFatBinary(void **fatCubinHandle);
void __cudaRegisterFunction(void **fatCubinHandle, const char *hostFun,
                            char *deviceFun, const char *deviceName,
                            int thread_limit, uint3 *tid, uint3 *bid,
                            dim3 *bDim, dim3 *gDim, int *wSize);
typedef void *kernel_handle;
cudaError_t __cudaGetKernel(kernel_handle *kernel, const void *hostFun);
cudaError_t __cudaLaunchKernel(kernel_handle kernel, dim3 grid, dim3 block,
                               void **args, size_t shared,
                               cudaStream_t stream);

static const char source[] =
    "extern \"C\" __global__ void scale(float *p, float k, unsigned n)\n"
    "{ unsigned i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) p[i] *= k; }\n"
    "extern \"C\" __global__ void fill(unsigned *p, unsigned v, unsigned long long n)\n"
    "{ unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) p[i] = v; }\n";

/* The host-side stubs the kernels are registered under (their addresses
 * are the kernels' names to the runtime). */
static void scale_stub(void) {}
static void fill_stub(void) {}

/* Compiles the kernels with NVRTC (PTX and an sm_80 cubin) and packs both
 * into a fat binary with nvFatbin. */
static void *build_fatbin(size_t *len)
{
    nvrtcProgram prog;
    if (nvrtcCreateProgram(&prog, source, "kernels.cu", 0, NULL, NULL) != NVRTC_SUCCESS)
        return NULL;
    const char *opts[] = {"-arch=sm_80"};
    if (nvrtcCompileProgram(prog, 1, opts) != NVRTC_SUCCESS)
        return NULL;
    size_t ptx_len, cubin_len;
    nvrtcGetPTXSize(prog, &ptx_len);
    nvrtcGetCUBINSize(prog, &cubin_len);
    char *ptx = malloc(ptx_len), *cubin = malloc(cubin_len);
    nvrtcGetPTX(prog, ptx);
    nvrtcGetCUBIN(prog, cubin);
    nvrtcDestroyProgram(&prog);

    /* nvFatbin compresses entries by default; -compress-all includes the
     * cubin, so both LZ4-compressed kinds travel. */
    const char *fopts[] = {"-64", "-compress-all"};
    nvFatbinHandle fb;
    if (nvFatbinCreate(&fb, fopts, 2) != NVFATBIN_SUCCESS ||
        nvFatbinAddPTX(fb, ptx, ptx_len, "80", "kernels", NULL) != NVFATBIN_SUCCESS ||
        nvFatbinAddCubin(fb, cubin, cubin_len, "80", "kernels") != NVFATBIN_SUCCESS ||
        nvFatbinSize(fb, len) != NVFATBIN_SUCCESS)
        return NULL;
    void *out = aligned_alloc(8, (*len + 7) / 8 * 8);
    if (nvFatbinGet(fb, out) != NVFATBIN_SUCCESS)
        return NULL;
    nvFatbinDestroy(&fb);
    free(ptx);
    free(cubin);
    return out;
}

/* FNV-1a over a buffer: the result line compared native and through the
 * shim on a GPU. */
static unsigned fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    unsigned h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

/* Registration, as nvcc's host code does it: in a constructor that runs
 * before main, with no driver call. */
static fatbin_wrapper wrapper = {0x466243b1, 1, NULL, NULL};
static void **registered;
static size_t registered_len;

__attribute__((constructor)) static void register_kernels(void)
{
    wrapper.data = build_fatbin(&registered_len);
    if (wrapper.data == NULL) {
        registered_len = 0;
        return;
    }
    registered = __cudaRegisterFatBinary(&wrapper);
    __cudaRegisterFunction(registered, (const char *)scale_stub, "scale", "scale",
                           -1, NULL, NULL, NULL, NULL, NULL);
    __cudaRegisterFunction(registered, (const char *)fill_stub, "fill", "fill",
                           -1, NULL, NULL, NULL, NULL, NULL);
    __cudaRegisterFatBinaryEnd(registered);
}

int main(void)
{
    const int expect_kernels = getenv("VCOMPUTE_EXPECT_KERNELS") != NULL;
    const unsigned n = 1 << 16;
    const size_t bytes = n * sizeof(float);

    int version = 0;
    CHECK(cudaRuntimeGetVersion(&version));
    printf("runtime=%d\n", version);
    int count = 0;
    CHECK(cudaGetDeviceCount(&count));
    EXPECT(count >= 1);
    printf("devices=%d\n", count);
    struct cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device=%s\n", prop.name);
    CHECK(cudaSetDevice(0));
    CHECK(cudaFree(0));

    EXPECT(registered_len > 0);
    printf("fatbin_len=%zu\n", registered_len);

    /* Allocation and a checked round trip. */
    float *host = malloc(bytes), *back = malloc(bytes);
    for (unsigned i = 0; i < n; i++)
        host[i] = (float)i * 0.5f;
    float *dev = NULL;
    CHECK(cudaMalloc((void **)&dev, bytes));
    printf("dev=%llx\n", (unsigned long long)(uintptr_t)dev);
    CHECK(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(back, dev, bytes, cudaMemcpyDeviceToHost));
    EXPECT(memcmp(host, back, bytes) == 0);

    /* A memset, read back. */
    unsigned char *bytes_back = malloc(256);
    CHECK(cudaMemset(dev, 0x5a, 256));
    CHECK(cudaMemcpy(bytes_back, dev, 256, cudaMemcpyDeviceToHost));
    for (int i = 0; i < 256; i++)
        EXPECT(bytes_back[i] == 0x5a);
    CHECK(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));

    /* cudaLaunchKernel: scale(dev, 3.0, n) on 256 blocks of 256. */
    float k = 3.0f;
    void *scale_args[] = {&dev, &k, (void *)&n};
    dim3 grid = {n / 256, 1, 1}, block = {256, 1, 1};
    CHECK(cudaLaunchKernel((const void *)scale_stub, grid, block, scale_args, 0, 0));
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(back, dev, bytes, cudaMemcpyDeviceToHost));
    EXPECT(back[2] == (expect_kernels ? 3.0f : 1.0f));
    printf("checksum scale %08x\n", fnv1a(back, bytes));

    /* __cudaLaunchKernel, as nvcc 12.8+ stubs launch: fill(dev, v, n). */
    kernel_handle fill_kernel = NULL;
    CHECK(__cudaGetKernel(&fill_kernel, (const void *)fill_stub));
    unsigned v = 0xc0ffee;
    unsigned long long n64 = n;
    void *fill_args[] = {&dev, &v, &n64};
    dim3 fgrid = {n / 128, 1, 1}, fblock = {128, 1, 1};
    CHECK(__cudaLaunchKernel(fill_kernel, fgrid, fblock, fill_args, 0, 0));
    CHECK(cudaDeviceSynchronize());

    /* A stream and events: an async round trip, timed. */
    cudaStream_t stream;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    cudaEvent_t start, stop;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    CHECK(cudaEventRecord(start, stream));
    for (unsigned i = 0; i < n; i++)
        host[i] = (float)(n - i);
    CHECK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, stream));
    CHECK(cudaMemcpyAsync(back, dev, bytes, cudaMemcpyDeviceToHost, stream));
    CHECK(cudaEventRecord(stop, stream));
    CHECK(cudaEventSynchronize(stop));
    CHECK(cudaStreamSynchronize(stream));
    EXPECT(memcmp(host, back, bytes) == 0);
    float ms = -1.0f;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    EXPECT(ms >= 0.0f);
    CHECK(cudaStreamQuery(stream));

    /* Stream-ordered allocation. */
    unsigned *pool = NULL;
    CHECK(cudaMallocAsync((void **)&pool, 4096, stream));
    printf("pool=%llx\n", (unsigned long long)(uintptr_t)pool);
    CHECK(cudaMemsetAsync(pool, 0x11, 4096, stream));
    unsigned char check[16];
    CHECK(cudaMemcpyAsync(check, pool, sizeof check, cudaMemcpyDeviceToHost, stream));
    CHECK(cudaStreamSynchronize(stream));
    for (int i = 0; i < 16; i++)
        EXPECT(check[i] == 0x11);

    /* A captured graph: a memset and a launch of fill, run on replay. */
    enum cudaStreamCaptureStatus status;
    CHECK(cudaStreamIsCapturing(stream, &status));
    EXPECT(status == cudaStreamCaptureStatusNone);
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    CHECK(cudaStreamIsCapturing(stream, &status));
    EXPECT(status == cudaStreamCaptureStatusActive);
    CHECK(cudaMemsetAsync(pool, 0x22, 4096, stream));
    unsigned v2 = 0xbeef;
    unsigned long long n_pool = 1024;
    void *pool_args[] = {&pool, &v2, &n_pool};
    dim3 pgrid = {8, 1, 1}, pblock = {128, 1, 1};
    CHECK(cudaLaunchKernel((const void *)fill_stub, pgrid, pblock, pool_args, 0, stream));
    cudaGraph_t graph;
    CHECK(cudaStreamEndCapture(stream, &graph));
    CHECK(cudaMemcpy(check, pool, sizeof check, cudaMemcpyDeviceToHost));
    EXPECT(check[0] == 0x11); /* captured, not run */
    cudaGraphExec_t exec;
    CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CHECK(cudaGraphLaunch(exec, stream));
    CHECK(cudaStreamSynchronize(stream));
    CHECK(cudaMemcpy(check, pool, sizeof check, cudaMemcpyDeviceToHost));
    if (expect_kernels)
        EXPECT(((unsigned *)check)[0] == 0xbeef);
    else
        EXPECT(check[0] == 0x22);
    CHECK(cudaGraphExecDestroy(exec));
    CHECK(cudaGraphDestroy(graph));
    CHECK(cudaFreeAsync(pool, stream));
    CHECK(cudaStreamSynchronize(stream));
    CHECK(cudaEventDestroy(start));
    CHECK(cudaEventDestroy(stop));
    CHECK(cudaStreamDestroy(stream));

    /* Pitched memory: a 2D copy in and out of a pitched allocation. */
    size_t pitch = 0;
    void *pitched = NULL;
    const size_t w = 100 * sizeof(float), h = 37;
    CHECK(cudaMallocPitch(&pitched, &pitch, w, h));
    EXPECT(pitch >= w && pitch % 256 == 0);
    printf("pitch=%zu\n", pitch);
    CHECK(cudaMemcpy2D(pitched, pitch, host, w, w, h, cudaMemcpyHostToDevice));
    memset(back, 0, w * h);
    CHECK(cudaMemcpy2D(back, w, pitched, pitch, w, h, cudaMemcpyDeviceToHost));
    EXPECT(memcmp(host, back, w * h) == 0);
    CHECK(cudaFree(pitched));

    /* Limits, stream priorities, and a launch from a configuration. */
    size_t heap = 0;
    CHECK(cudaDeviceSetLimit(cudaLimitMallocHeapSize, 32 << 20));
    CHECK(cudaDeviceGetLimit(&heap, cudaLimitMallocHeapSize));
    EXPECT(heap == 32 << 20);
    int least = 1, greatest = 1;
    CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    EXPECT(greatest <= least);
    cudaLaunchConfig_t config = {0};
    config.gridDim = (dim3){4, 2, 1};
    config.blockDim = (dim3){64, 1, 1};
    CHECK(cudaLaunchKernelExC(&config, (const void *)fill_stub, fill_args));

    CHECK(cudaFree(dev));
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaGetLastError());
    printf("launches=4\n");

    printf("PASS\n");
    return 0;
}
