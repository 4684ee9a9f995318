// fastWalshTransform: one radix-2 stage of the in-place Walsh-Hadamard
// transform (work-item i combines the pair `stride` apart), and the
// point-wise product of two transforms scaled by 1/n.
__kernel void fwt_stage(__global float *d, uint stride)
{
    size_t i = get_global_id(0);
    size_t lo = (i / stride) * 2 * stride + i % stride;
    size_t hi = lo + stride;
    float a = d[lo], b = d[hi];
    d[lo] = a + b;
    d[hi] = a - b;
}

__kernel void modulate(__global float *d, __global const float *k, float scale)
{
    size_t i = get_global_id(0);
    d[i] *= k[i] * scale;
}
