// convolutionSeparable: a (2*RADIUS+1)-tap filter (RADIUS defined when
// compiling) along rows, then along columns; zero outside the image. The
// filter lives in constant memory (the host sets it through
// cuModuleGetGlobal). The summation order matches the CPU reference. 2D
// blocks; the grid may overhang the image.

__constant__ float c_filter[2 * RADIUS + 1];

extern "C" __global__ void conv_rows(float *dst, const float *src, unsigned int w,
                                     unsigned int h)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= (int)w || y >= (int)h)
        return;
    float sum = 0.0f;
    for (int j = -RADIUS; j <= RADIUS; ++j) {
        int xx = x + j;
        if (xx >= 0 && xx < (int)w)
            sum += src[y * (int)w + xx] * c_filter[RADIUS - j];
    }
    dst[y * (int)w + x] = sum;
}

extern "C" __global__ void conv_cols(float *dst, const float *src, unsigned int w,
                                     unsigned int h)
{
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= (int)w || y >= (int)h)
        return;
    float sum = 0.0f;
    for (int j = -RADIUS; j <= RADIUS; ++j) {
        int yy = y + j;
        if (yy >= 0 && yy < (int)h)
            sum += src[yy * (int)w + x] * c_filter[RADIUS - j];
    }
    dst[y * (int)w + x] = sum;
}
