// fastWalshTransform: one radix-2 stage of the in-place Walsh-Hadamard
// transform of 2 * half elements (thread i combines the pair `stride`
// apart; stride is a power of two below 2 * half), and the point-wise
// product of two transforms scaled by 1/n.
extern "C" __global__ void fwt_stage(float *d, unsigned int stride, unsigned int half)
{
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= half)
        return;
    unsigned int lo = (i / stride) * 2 * stride + i % stride;
    unsigned int hi = lo + stride;
    float a = d[lo], b = d[hi];
    d[lo] = a + b;
    d[hi] = a - b;
}

extern "C" __global__ void modulate(float *d, const float *k, float scale, unsigned int n)
{
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        d[i] *= k[i] * scale;
}
