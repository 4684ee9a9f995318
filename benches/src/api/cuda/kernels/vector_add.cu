// vectorAdd: c = a + b. One thread per element, blocks of any size; the
// grid may overhang n.
extern "C" __global__ void vector_add(const float *a, const float *b, float *c,
                                      unsigned int n)
{
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        c[i] = a[i] + b[i];
}
