"""GPU validation: a numba-cuda kernel, run natively and through the shim;
outputs must match. numba-cuda compiles Python to PTX with NVVM, passes it
through cuLink* and loads it with cuModuleLoadDataEx. Prints SKIPPED when
numba-cuda or a device is missing.
"""
import hashlib
import sys

try:
    import numpy as np
    from numba import cuda
except ImportError:
    print("SKIPPED: numba-cuda (and numpy) are not installed")
    sys.exit(0)


@cuda.jit
def saxpy(a, x, y, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a * x[i] + y[i]


@cuda.jit
def matmul(a, b, c):
    row, col = cuda.grid(2)
    if row < c.shape[0] and col < c.shape[1]:
        acc = 0.0
        for k in range(a.shape[1]):
            acc += a[row, k] * b[k, col]
        c[row, col] = acc


def main():
    if not cuda.is_available():
        print("SKIPPED: numba-cuda sees no CUDA device")
        return
    n = 1 << 20
    x = (np.arange(n) % 1000).astype(np.float32) * 0.25
    y = (np.arange(n) % 777).astype(np.float32) * 0.5
    out = cuda.device_array_like(x)
    saxpy[(n + 255) // 256, 256](np.float32(2.0), cuda.to_device(x), cuda.to_device(y), out)
    got = out.copy_to_host()
    assert np.array_equal(got, np.float32(2.0) * x + y), "saxpy differs from NumPy"
    print(f"saxpy n={n} checksum={hashlib.sha256(got.tobytes()).hexdigest()[:16]}")

    m = 128
    a = ((np.arange(m * m) * 7) % 13 - 6).astype(np.float32).reshape(m, m)
    b = ((np.arange(m * m) * 5) % 11 - 5).astype(np.float32).reshape(m, m)
    c = cuda.device_array((m, m), dtype=np.float32)
    matmul[(m // 16, m // 16), (16, 16)](cuda.to_device(a), cuda.to_device(b), c)
    z = c.copy_to_host()
    assert np.abs(z - a @ b).max() < 1e-2, "matmul differs from NumPy"
    print(f"matmul n={m} checksum={hashlib.sha256(z.tobytes()).hexdigest()[:16]}")
    print("PASS")


if __name__ == "__main__":
    main()
