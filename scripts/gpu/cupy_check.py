"""GPU validation: CuPy (which links the CUDA runtime statically) natively
and through the shim. Elementwise and reduction kernels (compiled by
CuPy with NVRTC) and a cuBLAS SGEMM, each compared with NumPy on the
host; the checksums printed must be the same both ways. Prints SKIPPED
when CuPy or a device is missing; the SGEMM says SKIPPED without cuBLAS.
"""
import hashlib
import sys

try:
    import numpy as np
    import cupy as cp
except ImportError as e:
    print("SKIPPED: CuPy (and NumPy) are not importable: %s" % e)
    sys.exit(0)


def digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


rng = np.random.default_rng(1)
x = rng.standard_normal(1 << 20).astype(np.float32)
y = rng.standard_normal(1 << 20).astype(np.float32)
dx, dy = cp.asarray(x), cp.asarray(y)

# Elementwise: a fused expression, compared with NumPy.
got = (2.5 * dx + dy * dy - cp.sin(dx)).get()
want = 2.5 * x + y * y - np.sin(x)
assert np.allclose(got, want, rtol=1e-5, atol=1e-5), "elementwise"
print("checksum elementwise %s" % digest(got))

# Reductions.
s = float(dx.sum())
m = float(cp.max(dy))
assert abs(s - float(x.astype(np.float64).sum())) < 1e-2 * max(1.0, abs(s)), "sum"
assert m == float(y.max()), "max"
print("checksum reduction %.6e %.6e" % (s, m))

# A raw kernel, as users write them.
k = cp.RawKernel(
    r'extern "C" __global__ void twice(const float *a, float *b, int n)'
    r'{ int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) b[i] = 2 * a[i]; }',
    "twice",
)
out = cp.empty_like(dx)
k(((x.size + 255) // 256,), (256,), (dx, out, np.int32(x.size)))
assert np.array_equal(out.get(), 2 * x), "raw kernel"
print("checksum raw %s" % digest(out.get()))

# cuBLAS SGEMM.
try:
    a = rng.standard_normal((512, 256)).astype(np.float32)
    b = rng.standard_normal((256, 384)).astype(np.float32)
    c = (cp.asarray(a) @ cp.asarray(b)).get()
    assert np.allclose(c, a @ b, rtol=1e-3, atol=1e-3), "sgemm"
    print("checksum sgemm %s" % digest(np.round(c, 3)))
except (ImportError, RuntimeError, OSError) as e:
    if "cublas" not in str(e).lower():
        raise
    print("sgemm: SKIPPED (cuBLAS not found: %s)" % e)
print("PASS")
