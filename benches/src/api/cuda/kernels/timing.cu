// asyncAPI: add `value` to each of n ints in place.
extern "C" __global__ void increment(int *d, int value, unsigned int n)
{
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        d[i] += value;
}

// clock: each block of GROUP threads (GROUP is defined when compiling)
// sums its GROUP inputs in shared memory with a tree reduction. Thread 0
// reads the SM's clock64() before and after, into timer[block] and
// timer[gridDim.x + block]: the kernel timing itself, as CUDA's clock
// sample does.
extern "C" __global__ void group_sum(const int *in, int *out, long long *timer)
{
    __shared__ int scratch[GROUP];
    unsigned int lid = threadIdx.x;
    if (lid == 0)
        timer[blockIdx.x] = clock64();
    scratch[lid] = in[blockIdx.x * GROUP + lid];
    __syncthreads();
    for (unsigned int s = GROUP / 2; s > 0; s >>= 1) {
        if (lid < s)
            scratch[lid] += scratch[lid + s];
        __syncthreads();
    }
    if (lid == 0) {
        out[blockIdx.x] = scratch[0];
        timer[gridDim.x + blockIdx.x] = clock64();
    }
}

// Launch rate: the smallest kernel whose every launch can be verified
// (launched as one thread, one launch after the other on one stream).
extern "C" __global__ void tick(unsigned int *count)
{
    count[0] += 1;
}
