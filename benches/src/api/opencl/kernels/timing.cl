// asyncAPI: add `value` to every element in place.
__kernel void increment(__global int *d, int value)
{
    d[get_global_id(0)] += value;
}

// clock: each work-group sums its GROUP inputs in local memory (a tree
// reduction with barriers); the device's own timestamps time the kernel.
__kernel void group_sum(__global const int *in, __global int *out)
{
    __local int scratch[GROUP];
    size_t lid = get_local_id(0);
    scratch[lid] = in[get_global_id(0)];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (size_t s = GROUP / 2; s > 0; s >>= 1) {
        if (lid < s)
            scratch[lid] += scratch[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0)
        out[get_group_id(0)] = scratch[0];
}

// Launch rate: the smallest kernel whose every launch can be verified.
__kernel void tick(__global uint *count)
{
    count[0] += 1;
}
