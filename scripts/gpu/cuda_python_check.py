"""GPU validation: cuda-python's driver API (the bindings numba-cuda and
others build on), run natively and through the shim; outputs must match.

Compiles a vector add and a matrix multiply with NVRTC, loads the PTX with
cuModuleLoadData, launches them, checks against NumPy and prints
checksums. Every driver entry point is resolved by cuda-python through
cuGetProcAddress_v2. Prints SKIPPED when cuda-python, NumPy or a device is
missing.
"""
import hashlib
import sys

try:
    import numpy as np
except ImportError:
    print("SKIPPED: numpy is not installed")
    sys.exit(0)
try:
    from cuda.bindings import driver as cu, nvrtc
except ImportError:
    try:
        from cuda import cuda as cu, nvrtc
    except ImportError:
        print("SKIPPED: cuda-python is not installed")
        sys.exit(0)

SRC = r"""
extern "C" __global__ void vadd(const float *a, const float *b, float *c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}
extern "C" __global__ void matmul(const float *a, const float *b, float *c, int n) {
    int row = blockIdx.y * blockDim.y + threadIdx.y;
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (row < n && col < n) {
        float acc = 0.0f;
        for (int k = 0; k < n; k++) acc += a[row * n + k] * b[k * n + col];
        c[row * n + col] = acc;
    }
}
"""


def ok(result):
    err, *rest = result
    name = getattr(err, "name", str(err))
    if int(err) != 0:
        raise RuntimeError(f"call failed: {name}")
    return rest[0] if len(rest) == 1 else rest


def main():
    err = cu.cuInit(0)[0]
    if int(err) != 0:
        print(f"SKIPPED: cuInit failed ({err})")
        return
    dev = ok(cu.cuDeviceGet(0))
    ctx = ok(cu.cuDevicePrimaryCtxRetain(dev))
    ok(cu.cuCtxSetCurrent(ctx))
    attr = cu.CUdevice_attribute
    major = ok(cu.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev))
    minor = ok(cu.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev))

    prog = ok(nvrtc.nvrtcCreateProgram(SRC.encode(), b"kernels.cu", 0, [], []))
    opts = [f"--gpu-architecture=compute_{major}{minor}".encode()]
    ok(nvrtc.nvrtcCompileProgram(prog, len(opts), opts))
    size = ok(nvrtc.nvrtcGetPTXSize(prog))
    ptx = b" " * size
    ok(nvrtc.nvrtcGetPTX(prog, ptx))
    ptx_arr = np.char.array(ptx)
    module = ok(cu.cuModuleLoadData(ptx_arr.ctypes.data))
    stream = ok(cu.cuStreamCreate(0))

    def launch(name, grid, block, *args):
        fn = ok(cu.cuModuleGetFunction(module, name))
        holders = [np.array([a], dtype=t) for a, t in args]
        ptrs = np.array([h.ctypes.data for h in holders], dtype=np.uint64)
        ok(cu.cuLaunchKernel(fn, *grid, *block, 0, stream, ptrs.ctypes.data, 0))

    def to_device(host):
        d = ok(cu.cuMemAlloc(host.nbytes))
        ok(cu.cuMemcpyHtoDAsync(d, host.ctypes.data, host.nbytes, stream))
        return d

    n = 1 << 20
    a = (np.arange(n) % 1000).astype(np.float32) * 0.25
    b = (np.arange(n) % 777).astype(np.float32) * 0.5
    da, db = to_device(a), to_device(b)
    dc = ok(cu.cuMemAlloc(a.nbytes))
    launch(b"vadd", ((n + 255) // 256, 1, 1), (256, 1, 1),
           (int(da), np.uint64), (int(db), np.uint64), (int(dc), np.uint64), (n, np.int32))
    c = np.empty_like(a)
    ok(cu.cuMemcpyDtoHAsync(c.ctypes.data, dc, c.nbytes, stream))
    ok(cu.cuStreamSynchronize(stream))
    assert np.array_equal(c, a + b), "vadd differs from NumPy"
    print(f"vadd n={n} checksum={hashlib.sha256(c.tobytes()).hexdigest()[:16]}")

    m = 256
    x = ((np.arange(m * m) * 7) % 13 - 6).astype(np.float32)
    y = ((np.arange(m * m) * 5) % 11 - 5).astype(np.float32)
    dx, dy = to_device(x), to_device(y)
    dz = ok(cu.cuMemAlloc(x.nbytes))
    launch(b"matmul", (m // 16, m // 16, 1), (16, 16, 1),
           (int(dx), np.uint64), (int(dy), np.uint64), (int(dz), np.uint64), (m, np.int32))
    z = np.empty_like(x)
    ok(cu.cuMemcpyDtoHAsync(z.ctypes.data, dz, z.nbytes, stream))
    ok(cu.cuStreamSynchronize(stream))
    want = x.reshape(m, m) @ y.reshape(m, m)
    assert np.abs(z.reshape(m, m) - want).max() < 1e-2, "matmul differs from NumPy"
    print(f"matmul n={m} checksum={hashlib.sha256(z.tobytes()).hexdigest()[:16]}")

    for d in (da, db, dc, dx, dy, dz):
        ok(cu.cuMemFree(d))
    ok(cu.cuStreamDestroy(stream))
    ok(cu.cuDevicePrimaryCtxRelease(dev))
    print("PASS")


if __name__ == "__main__":
    main()
