// images: every pixel of an RGBA8 image, read through a sampler (nearest,
// unnormalized coordinates) and stored as bytes, one work-item per pixel.
__kernel void sample(read_only image2d_t im, sampler_t s, __global uchar4 *out, int width)
{
    int x = get_global_id(0), y = get_global_id(1);
    float4 v = read_imagef(im, s, (int2)(x, y));
    out[y * width + x] = convert_uchar4_sat_rte(v * 255.0f);
}
