// alignedTypes: element-wise copies of types from 1 to 32 bytes, vector
// types (naturally aligned) and plain structs (aligned to their members).
struct rgb32 {
    unsigned int r, g, b;
};
struct rgba32_2 {
    uint4 a, b;
};

#define COPY(name, T)                                                        \
    extern "C" __global__ void copy_##name(const T *src, T *dst, unsigned int n) \
    {                                                                        \
        unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;              \
        if (i < n)                                                           \
            dst[i] = src[i];                                                 \
    }

COPY(u8, unsigned char)
COPY(u16, unsigned short)
COPY(rgba8, uchar4)
COPY(u32, unsigned int)
COPY(la32, uint2)
COPY(rgb32, rgb32)
COPY(rgba32, uint4)
COPY(rgba32_2, rgba32_2)
