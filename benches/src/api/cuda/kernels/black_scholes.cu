// BlackScholes: European call and put prices. The cumulative normal
// distribution is the Abramowitz-Stegun polynomial approximation (the CPU
// reference uses the same). Single-precision math throughout.
__device__ float cnd(float d)
{
    const float a1 = 0.31938153f, a2 = -0.356563782f, a3 = 1.781477937f,
                a4 = -1.821255978f, a5 = 1.330274429f;
    const float rsqrt2pi = 0.39894228040143267794f;
    float k = 1.0f / (1.0f + 0.2316419f * fabsf(d));
    float c = rsqrt2pi * expf(-0.5f * d * d) *
              (k * (a1 + k * (a2 + k * (a3 + k * (a4 + k * a5)))));
    return d > 0.0f ? 1.0f - c : c;
}

extern "C" __global__ void black_scholes(float *call, float *put, const float *s,
                                         const float *x, const float *t, float r,
                                         float v, unsigned int n)
{
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float sqrt_t = sqrtf(t[i]);
    float d1 = (logf(s[i] / x[i]) + (r + 0.5f * v * v) * t[i]) / (v * sqrt_t);
    float d2 = d1 - v * sqrt_t;
    float exp_rt = expf(-r * t[i]);
    float cnd1 = cnd(d1), cnd2 = cnd(d2);
    call[i] = s[i] * cnd1 - x[i] * exp_rt * cnd2;
    put[i] = x[i] * exp_rt * (1.0f - cnd2) - s[i] * (1.0f - cnd1);
}
