/* The macros of the CUDA toolkit's crt/host_defines.h that the runtime
 * API headers (cuda_runtime_api.h and what it includes) need when they
 * are compiled as plain C by a host compiler. The toolkit ships this file
 * with nvcc; the runtime's wheel has the API headers but not crt/. */
#ifndef VCOMPUTE_CRT_HOST_DEFINES_H
#define VCOMPUTE_CRT_HOST_DEFINES_H
#define __host__
#define __device__
#define __global__
#define __shared__
#define __constant__
#define __managed__
#define __noinline__ __attribute__((noinline))
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __align__(n) __attribute__((aligned(n)))
#define __thread__ __thread
#define __import__
#define __export__
#define __cdecl
#define __annotate__(a) __attribute__((a))
#define __location__(a) __annotate__(a)
#define CUDARTAPI
#define CUDARTAPI_CDECL
#define __specialization_static
#define __builtin_align__(a) __align__(a)
#define __device_builtin__
#define __device_builtin_texture_type__
#define __device_builtin_surface_type__
#define __cudart_builtin__
#define __cuda_builtin_vector_align8(tag, members) \
    struct __device_builtin__ __align__(8) tag { members }
#define __CUDA_ALIGN__(n) __align__(n)
#endif
