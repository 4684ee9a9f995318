// matrixMul: C = A * B for square row-major n x n matrices, n a multiple
// of TILE. Each work-group computes one TILE x TILE block of C, staging
// tiles of A and B in local memory.
#define TILE 16

__kernel void matrix_mul(__global const float *a, __global const float *b,
                         __global float *c, uint n)
{
    __local float at[TILE][TILE];
    __local float bt[TILE][TILE];
    size_t tx = get_local_id(0), ty = get_local_id(1);
    size_t col = get_global_id(0), row = get_global_id(1);
    float acc = 0.0f;
    for (uint t = 0; t < n; t += TILE) {
        at[ty][tx] = a[row * n + t + tx];
        bt[ty][tx] = b[(t + ty) * n + col];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint k = 0; k < TILE; ++k)
            acc += at[ty][k] * bt[k][tx];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    c[row * n + col] = acc;
}
