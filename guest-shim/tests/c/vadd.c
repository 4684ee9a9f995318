/* End-to-end smoke program: runs unmodified against any OpenCL platform;
 * the icd_e2e test runs it through ocl-icd, the shim and the daemon. */
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define CHECK(x) do { cl_int e_ = (x); if (e_ != CL_SUCCESS) { printf("FAIL %s = %d (line %d)\n", #x, e_, __LINE__); return 1; } } while (0)
static const char *src = "__kernel void vadd(__global const float *a, __global const float *b, __global float *c, float k, __local float *tmp) {\n"
 " size_t i = get_global_id(0); tmp[get_local_id(0)] = a[i]; c[i] = tmp[get_local_id(0)] + b[i] * k; }\n"
 "__kernel void fill(__global int *p, int v) { p[get_global_id(0)] = v; }\n";
static int cb_called = 0;
static void CL_CALLBACK cb(cl_event e, cl_int st, void *ud) { (void)e; (void)ud; cb_called = 1 + (st == CL_COMPLETE); }
int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1024;
  cl_platform_id p; cl_device_id d; cl_int err; cl_uint np;
  CHECK(clGetPlatformIDs(1, &p, &np));
  CHECK(clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 1, &d, NULL));
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)p, 0};
  cl_context ctx = clCreateContext(props, 1, &d, NULL, NULL, &err); CHECK(err);
  cl_command_queue q = clCreateCommandQueueWithProperties(ctx, d, NULL, &err); CHECK(err);
  float *a = malloc(n * 4), *b = malloc(n * 4), *c = malloc(n * 4);
  for (size_t i = 0; i < n; i++) { a[i] = i % 1000; b[i] = 2 * (i % 777); }
  cl_mem ba = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, n * 4, a, &err); CHECK(err);
  cl_mem bb = clCreateBuffer(ctx, CL_MEM_READ_ONLY, n * 4, NULL, &err); CHECK(err);
  cl_mem bc = clCreateBuffer(ctx, CL_MEM_WRITE_ONLY, n * 4, NULL, &err); CHECK(err);
  CHECK(clEnqueueWriteBuffer(q, bb, CL_FALSE, 0, n * 4, b, 0, NULL, NULL));
  cl_program prog = clCreateProgramWithSource(ctx, 1, &src, NULL, &err); CHECK(err);
  CHECK(clBuildProgram(prog, 0, NULL, "", NULL, NULL));
  cl_kernel ks[4]; cl_uint nk;
  CHECK(clCreateKernelsInProgram(prog, 4, ks, &nk));
  printf("kernels in program: %u\n", nk);
  cl_kernel k = clCreateKernel(prog, "vadd", &err); CHECK(err);
  float kk = 3.0f;
  CHECK(clSetKernelArg(k, 0, sizeof(cl_mem), &ba));
  CHECK(clSetKernelArg(k, 1, sizeof(cl_mem), &bb));
  CHECK(clSetKernelArg(k, 2, sizeof(cl_mem), &bc));
  CHECK(clSetKernelArg(k, 3, sizeof(float), &kk));
  CHECK(clSetKernelArg(k, 4, 64 * sizeof(float), NULL));
  size_t g = n, l = 64; cl_event ev;
  CHECK(clEnqueueNDRangeKernel(q, k, 1, NULL, &g, &l, 0, NULL, &ev));
  CHECK(clSetEventCallback(ev, CL_COMPLETE, cb, NULL));
  CHECK(clEnqueueReadBuffer(q, bc, CL_TRUE, 0, n * 4, c, 1, &ev, NULL));
  CHECK(clWaitForEvents(1, &ev));
  cl_int st; CHECK(clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof st, &st, NULL));
  cl_command_queue eq; CHECK(clGetEventInfo(ev, CL_EVENT_COMMAND_QUEUE, sizeof eq, &eq, NULL));
  for (size_t i = 0; i < n; i++) if (c[i] != a[i] + 3 * b[i]) { printf("FAIL mismatch at %zu: %f\n", i, c[i]); return 1; }
  printf("vadd ok n=%zu status=%d queue_match=%d callback=%d\n", n, st, eq == q, cb_called);
  /* map / unmap */
  float *m = clEnqueueMapBuffer(q, bc, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, 0, n * 4, 0, NULL, NULL, &err); CHECK(err);
  if (m[5] != c[5]) { printf("FAIL map read\n"); return 1; }
  m[5] = -1.0f;
  CHECK(clEnqueueUnmapMemObject(q, bc, m, 0, NULL, NULL));
  float v; CHECK(clEnqueueReadBuffer(q, bc, CL_TRUE, 20, 4, &v, 0, NULL, NULL));
  if (v != -1.0f) { printf("FAIL unmap writeback %f\n", v); return 1; }
  /* fill + copy + sub-buffer */
  int pat = 7; CHECK(clEnqueueFillBuffer(q, bb, &pat, 4, 0, n * 4, 0, NULL, NULL));
  CHECK(clEnqueueCopyBuffer(q, bb, bc, 0, 0, n * 4, 0, NULL, NULL));
  cl_buffer_region r = {4096, 64}; cl_mem sub = clCreateSubBuffer(bc, 0, CL_BUFFER_CREATE_TYPE_REGION, &r, &err); CHECK(err);
  int got[16]; CHECK(clEnqueueReadBuffer(q, sub, CL_TRUE, 0, 64, got, 0, NULL, NULL));
  if (got[3] != 7) { printf("FAIL fill/copy/sub %d\n", got[3]); return 1; }
  cl_mem parent; CHECK(clGetMemObjectInfo(sub, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof parent, &parent, NULL));
  if (parent != bc) { printf("FAIL parent\n"); return 1; }
  /* sticky error: bad arg index surfaces at clFinish */
  err = clSetKernelArg(k, 9, sizeof(float), &kk);
  cl_int err2 = clFinish(q); printf("bad arg index: at clSetKernelArg %d, at clFinish %d\n", err, err2);
  CHECK(clFinish(q));
  /* binaries */
  size_t bs; CHECK(clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof bs, &bs, NULL));
  unsigned char *bin = malloc(bs); CHECK(clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL));
  cl_int bst; const unsigned char *cbin = bin;
  cl_program p2 = clCreateProgramWithBinary(ctx, 1, &d, &bs, &cbin, &bst, &err); CHECK(err);
  CHECK(clBuildProgram(p2, 1, &d, NULL, NULL, NULL));
  printf("binary roundtrip ok (%zu bytes)\n", bs);
  char log[256]; CHECK(clGetProgramBuildInfo(prog, d, CL_PROGRAM_BUILD_LOG, sizeof log, log, NULL));
  size_t wg; CHECK(clGetKernelWorkGroupInfo(k, d, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, NULL));
  cl_uint rc; CHECK(clGetContextInfo(ctx, CL_CONTEXT_REFERENCE_COUNT, sizeof rc, &rc, NULL));
  printf("wg=%zu ctx_refs=%u\n", wg, rc);
  for (cl_uint i = 0; i < nk; i++) CHECK(clReleaseKernel(ks[i]));
  CHECK(clReleaseEvent(ev)); CHECK(clReleaseKernel(k)); CHECK(clReleaseProgram(prog)); CHECK(clReleaseProgram(p2));
  CHECK(clReleaseMemObject(sub)); CHECK(clReleaseMemObject(ba)); CHECK(clReleaseMemObject(bb)); CHECK(clReleaseMemObject(bc));
  CHECK(clReleaseCommandQueue(q)); CHECK(clReleaseContext(ctx));
  printf("ALL OK\n");
  return 0;
}
