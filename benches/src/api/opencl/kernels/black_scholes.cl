// BlackScholes: European call and put prices. The cumulative normal
// distribution is the Abramowitz-Stegun polynomial approximation.
float cnd(float d)
{
    const float a1 = 0.31938153f, a2 = -0.356563782f, a3 = 1.781477937f,
                a4 = -1.821255978f, a5 = 1.330274429f;
    const float rsqrt2pi = 0.39894228040143267794f;
    float k = 1.0f / (1.0f + 0.2316419f * fabs(d));
    float c = rsqrt2pi * exp(-0.5f * d * d) *
              (k * (a1 + k * (a2 + k * (a3 + k * (a4 + k * a5)))));
    return d > 0.0f ? 1.0f - c : c;
}

__kernel void black_scholes(__global float *call, __global float *put,
                            __global const float *s, __global const float *x,
                            __global const float *t, float r, float v, uint n)
{
    size_t i = get_global_id(0);
    if (i >= n)
        return;
    float sqrt_t = sqrt(t[i]);
    float d1 = (log(s[i] / x[i]) + (r + 0.5f * v * v) * t[i]) / (v * sqrt_t);
    float d2 = d1 - v * sqrt_t;
    float exp_rt = exp(-r * t[i]);
    float cnd1 = cnd(d1), cnd2 = cnd(d2);
    call[i] = s[i] * cnd1 - x[i] * exp_rt * cnd2;
    put[i] = x[i] * exp_rt * (1.0f - cnd2) - s[i] * (1.0f - cnd1);
}
