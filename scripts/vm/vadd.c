/*
 * Vector add through OpenCL, checked on the host side of the call.
 *
 *   vadd N        adds two N-element float vectors once, verifies every
 *                 element, prints "VADD OK n=N platform=<name>" (exit 0)
 *                 or "VADD FAIL ..." (exit 1)
 *   vadd --loop   repeats a 64K-element add forever, printing "VADD READY"
 *                 after the first verified round (used to kill a program
 *                 mid-run)
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *src =
    "__kernel void vadd(__global const float *a, __global const float *b,\n"
    "                   __global float *c) {\n"
    "    size_t i = get_global_id(0);\n"
    "    c[i] = a[i] + b[i];\n"
    "}\n";

#define CHECK(call)                                                        \
    do {                                                                   \
        cl_int e_ = (call);                                                \
        if (e_ != CL_SUCCESS) {                                            \
            printf("VADD FAIL %s = %d (line %d)\n", #call, e_, __LINE__); \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static int run(cl_context ctx, cl_command_queue q, cl_kernel k, size_t n) {
    size_t bytes = n * sizeof(float);
    float *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    if (!a || !b || !c) {
        printf("VADD FAIL out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        a[i] = (float)i;
        b[i] = (float)(2 * i + 1);
        c[i] = -1.0f;
    }
    cl_int err;
    cl_mem da = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, a, &err);
    CHECK(err);
    cl_mem db = clCreateBuffer(ctx, CL_MEM_READ_ONLY, bytes, NULL, &err);
    CHECK(err);
    cl_mem dc = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, bytes, NULL, &err);
    CHECK(err);
    CHECK(clEnqueueWriteBuffer(q, db, CL_FALSE, 0, bytes, b, 0, NULL, NULL));
    CHECK(clSetKernelArg(k, 0, sizeof da, &da));
    CHECK(clSetKernelArg(k, 1, sizeof db, &db));
    CHECK(clSetKernelArg(k, 2, sizeof dc, &dc));
    CHECK(clEnqueueNDRangeKernel(q, k, 1, NULL, &n, NULL, 0, NULL, NULL));
    CHECK(clEnqueueReadBuffer(q, dc, CL_TRUE, 0, bytes, c, 0, NULL, NULL));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (c[i] != (float)(3 * i + 1))
            bad++;
    clReleaseMemObject(da);
    clReleaseMemObject(db);
    clReleaseMemObject(dc);
    free(a);
    free(b);
    free(c);
    return bad == 0;
}

int main(int argc, char **argv) {
    int loop = argc > 1 && strcmp(argv[1], "--loop") == 0;
    size_t n = loop ? 65536 : (argc > 1 ? strtoul(argv[1], NULL, 10) : 1024);
    if (n == 0) {
        printf("VADD FAIL bad size\n");
        return 1;
    }
    cl_platform_id platform;
    cl_uint np = 0;
    CHECK(clGetPlatformIDs(1, &platform, &np));
    char name[256] = "";
    CHECK(clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof name, name, NULL));
    cl_device_id dev;
    CHECK(clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &dev, NULL));
    cl_int err;
    cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    CHECK(err);
    cl_command_queue q = clCreateCommandQueue(ctx, dev, 0, &err);
    CHECK(err);
    cl_program p = clCreateProgramWithSource(ctx, 1, &src, NULL, &err);
    CHECK(err);
    CHECK(clBuildProgram(p, 1, &dev, "", NULL, NULL));
    cl_kernel k = clCreateKernel(p, "vadd", &err);
    CHECK(err);
    if (loop) {
        for (unsigned long round = 0;; round++) {
            if (!run(ctx, q, k, n)) {
                printf("VADD FAIL wrong result in round %lu\n", round);
                return 1;
            }
            if (round == 0) {
                printf("VADD READY\n");
                fflush(stdout);
            }
        }
    }
    if (!run(ctx, q, k, n)) {
        printf("VADD FAIL wrong result n=%zu\n", n);
        return 1;
    }
    printf("VADD OK n=%zu platform=%s\n", n, name);
    clReleaseKernel(k);
    clReleaseProgram(p);
    clReleaseCommandQueue(q);
    clReleaseContext(ctx);
    return 0;
}
