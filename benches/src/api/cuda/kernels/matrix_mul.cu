// matrixMul: C = A * B for square row-major n x n matrices, n a multiple
// of TILE (defined when compiling). Launched with TILE x TILE blocks on an
// (n/TILE) x (n/TILE) grid; each block computes one TILE x TILE block of
// C, staging tiles of A and B in shared memory.

extern "C" __global__ void matrix_mul(const float *a, const float *b, float *c,
                                      unsigned int n)
{
    __shared__ float at[TILE][TILE];
    __shared__ float bt[TILE][TILE];
    unsigned int tx = threadIdx.x, ty = threadIdx.y;
    unsigned long long col = (unsigned long long)blockIdx.x * TILE + tx;
    unsigned long long row = (unsigned long long)blockIdx.y * TILE + ty;
    float acc = 0.0f;
    for (unsigned int t = 0; t < n; t += TILE) {
        at[ty][tx] = a[row * n + t + tx];
        bt[ty][tx] = b[(unsigned long long)(t + ty) * n + col];
        __syncthreads();
        for (unsigned int k = 0; k < TILE; ++k)
            acc += at[ty][k] * bt[k][tx];
        __syncthreads();
    }
    c[row * n + col] = acc;
}
