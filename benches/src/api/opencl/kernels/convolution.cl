// convolutionSeparable: a (2*RADIUS+1)-tap filter along rows, then along
// columns; zero outside the image. The summation order matches the CPU
// reference.
#define RADIUS 8

__kernel void conv_rows(__global float *dst, __global const float *src,
                        __constant float *k, uint w, uint h)
{
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= (int)w || y >= (int)h)
        return;
    float sum = 0.0f;
    for (int j = -RADIUS; j <= RADIUS; ++j) {
        int xx = x + j;
        if (xx >= 0 && xx < (int)w)
            sum += src[y * (int)w + xx] * k[RADIUS - j];
    }
    dst[y * (int)w + x] = sum;
}

__kernel void conv_cols(__global float *dst, __global const float *src,
                        __constant float *k, uint w, uint h)
{
    int x = get_global_id(0), y = get_global_id(1);
    if (x >= (int)w || y >= (int)h)
        return;
    float sum = 0.0f;
    for (int j = -RADIUS; j <= RADIUS; ++j) {
        int yy = y + j;
        if (yy >= 0 && yy < (int)h)
            sum += src[yy * (int)w + x] * k[RADIUS - j];
    }
    dst[y * (int)w + x] = sum;
}
