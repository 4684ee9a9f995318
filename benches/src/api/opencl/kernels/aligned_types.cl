// alignedTypes: element-wise copies of types from 1 to 32 bytes, vector
// types (naturally aligned) and plain structs (aligned to their members).
typedef struct { uint r, g, b; } rgb32;
typedef struct { uint4 a, b; } rgba32_2;

#define COPY(name, T)                                                        \
    __kernel void copy_##name(__global const T *src, __global T *dst, uint n) \
    {                                                                        \
        size_t i = get_global_id(0);                                         \
        if (i < n)                                                           \
            dst[i] = src[i];                                                 \
    }

COPY(u8, uchar)
COPY(u16, ushort)
COPY(rgba8, uchar4)
COPY(u32, uint)
COPY(la32, uint2)
COPY(rgb32, rgb32)
COPY(rgba32, uint4)
COPY(rgba32_2, rgba32_2)
