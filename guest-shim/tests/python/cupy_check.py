"""CuPy through the shim: it initializes (CuPy links the CUDA runtime
statically), sees the device and its properties, and arrays of several
dtypes and sizes come back from the device exactly as they went in.
Prints key=value lines for the test to compare, and PASS at the end."""
import numpy
import cupy

runtime = cupy.cuda.runtime
print("devices=%d" % runtime.getDeviceCount())
props = runtime.getDeviceProperties(0)
print("name=%s" % props["name"].decode())
print("major=%d" % props["major"])
print("total_mem=%d" % props["totalGlobalMem"])
print("driver=%d" % runtime.driverGetVersion())

rng = numpy.random.default_rng(7)
moved = 0
for dtype in ["float32", "float64", "int8", "int64", "uint16", "complex64", "bool"]:
    for n in [1, 1000, (3 << 20) // 8]:
        x = rng.standard_normal(n) * 100
        if dtype == "complex64":
            x = x + 1j * x[::-1]
        x = x.astype(dtype)
        d = cupy.asarray(x)
        assert d.shape == x.shape and d.dtype == x.dtype
        y = d.get()
        assert y.dtype == x.dtype and numpy.array_equal(x, y), (dtype, n)
        moved += x.nbytes
print("bytes=%d" % moved)
print("PASS")
