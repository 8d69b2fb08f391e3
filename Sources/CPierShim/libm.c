// The math functions the Swift standard library references, defined here so that the release
// link leaves libm.so out (scripts/build-release links it as-needed, and nothing then needs
// it). The standard library's code is one section the linker keeps whole, so it references
// ~100 of them although a plugin calls at most one or two; loading libm.so anyway ran its ifunc
// resolvers and mapped ~0.4 MiB in every plugin exec (docs/design.md, "Peak RSS").
//
// `ceil` is computed here (Dictionary and Set sizing call it in every plugin). Every other one
// loads libm.so.6 on its first call and forwards to it, so results are exactly libm's. A
// function the standard library starts to reference that is missing here only keeps libm.so
// linked: never a wrong answer.
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static void *pier_libm_function(const char *name) {
    static void *library;
    void *handle = __atomic_load_n(&library, __ATOMIC_ACQUIRE);
    if (handle == NULL) {
        // Two threads may both open it: dlopen counts references, either handle works.
        handle = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
        if (handle == NULL) {
            fprintf(stderr, "cannot load libm.so.6: %s\n", dlerror());
            abort();
        }
        __atomic_store_n(&library, handle, __ATOMIC_RELEASE);
    }
    void *function = dlsym(handle, name);
    if (function == NULL) {
        fprintf(stderr, "libm.so.6 has no %s\n", name);
        abort();
    }
    return function;
}

#define PIER_LIBM(type, name, parameters, arguments)                                      \
    type name parameters {                                                                \
        static type(*resolved) parameters;                                                \
        type(*function) parameters = __atomic_load_n(&resolved, __ATOMIC_ACQUIRE);        \
        if (function == NULL) {                                                           \
            function = (type(*) parameters)pier_libm_function(#name);                     \
            __atomic_store_n(&resolved, function, __ATOMIC_RELEASE);                      \
        }                                                                                 \
        return function arguments;                                                        \
    }
#define PIER_LIBM_1(type, name) PIER_LIBM(type, name, (type x), (x))
#define PIER_LIBM_2(type, name) PIER_LIBM(type, name, (type x, type y), (x, y))
#define PIER_LIBM_3(type, name) PIER_LIBM(type, name, (type x, type y, type z), (x, y, z))

// Rounds up to an integral value: what libm's ceil returns, including -0.0 for (-1, -0] and x
// itself for NaN, infinities and every value of 2^52 or more in magnitude (all integral).
double ceil(double x) {
    if (!(__builtin_fabs(x) < 0x1p52)) return x;
    double truncated = (double)(long long)x;
    if (truncated < x) truncated += 1.0;
    return __builtin_copysign(truncated, x);
}

PIER_LIBM_1(double, cos)
PIER_LIBM_1(double, exp)
PIER_LIBM_1(double, exp2)
PIER_LIBM_1(double, floor)
PIER_LIBM_1(double, log)
PIER_LIBM_1(double, log10)
PIER_LIBM_1(double, log2)
PIER_LIBM_1(double, nearbyint)
PIER_LIBM_1(double, rint)
PIER_LIBM_1(double, round)
PIER_LIBM_1(double, sin)
PIER_LIBM_1(double, sqrt)
PIER_LIBM_1(double, trunc)
PIER_LIBM_2(double, fmod)
PIER_LIBM_2(double, remainder)
PIER_LIBM_3(double, fma)
PIER_LIBM(double, jn, (int n, double x), (n, x))
PIER_LIBM(double, yn, (int n, double x), (n, x))
PIER_LIBM(double, lgamma_r, (double x, int *sign), (x, sign))
PIER_LIBM(double, remquo, (double x, double y, int *quotient), (x, y, quotient))

PIER_LIBM_1(float, acosf)
PIER_LIBM_1(float, acoshf)
PIER_LIBM_1(float, asinf)
PIER_LIBM_1(float, asinhf)
PIER_LIBM_1(float, atanf)
PIER_LIBM_1(float, atanhf)
PIER_LIBM_1(float, cbrtf)
PIER_LIBM_1(float, ceilf)
PIER_LIBM_1(float, cosf)
PIER_LIBM_1(float, coshf)
PIER_LIBM_1(float, erfcf)
PIER_LIBM_1(float, erff)
PIER_LIBM_1(float, exp2f)
PIER_LIBM_1(float, expf)
PIER_LIBM_1(float, expm1f)
PIER_LIBM_1(float, floorf)
PIER_LIBM_1(float, log10f)
PIER_LIBM_1(float, log1pf)
PIER_LIBM_1(float, log2f)
PIER_LIBM_1(float, logbf)
PIER_LIBM_1(float, logf)
PIER_LIBM_1(float, nearbyintf)
PIER_LIBM_1(float, rintf)
PIER_LIBM_1(float, roundf)
PIER_LIBM_1(float, sinf)
PIER_LIBM_1(float, sinhf)
PIER_LIBM_1(float, sqrtf)
PIER_LIBM_1(float, tanf)
PIER_LIBM_1(float, tanhf)
PIER_LIBM_1(float, tgammaf)
PIER_LIBM_1(float, truncf)
PIER_LIBM_2(float, atan2f)
PIER_LIBM_2(float, fdimf)
PIER_LIBM_2(float, fmodf)
PIER_LIBM_2(float, hypotf)
PIER_LIBM_2(float, nextafterf)
PIER_LIBM_2(float, powf)
PIER_LIBM_2(float, remainderf)
PIER_LIBM_3(float, fmaf)
PIER_LIBM(float, nanf, (const char *tag), (tag))
PIER_LIBM(float, lgammaf_r, (float x, int *sign), (x, sign))
PIER_LIBM(float, remquof, (float x, float y, int *quotient), (x, y, quotient))

PIER_LIBM_1(long double, acoshl)
PIER_LIBM_1(long double, acosl)
PIER_LIBM_1(long double, asinhl)
PIER_LIBM_1(long double, asinl)
PIER_LIBM_1(long double, atanhl)
PIER_LIBM_1(long double, atanl)
PIER_LIBM_1(long double, cbrtl)
PIER_LIBM_1(long double, ceill)
PIER_LIBM_1(long double, coshl)
PIER_LIBM_1(long double, cosl)
PIER_LIBM_1(long double, erfcl)
PIER_LIBM_1(long double, erfl)
PIER_LIBM_1(long double, exp2l)
PIER_LIBM_1(long double, expl)
PIER_LIBM_1(long double, expm1l)
PIER_LIBM_1(long double, floorl)
PIER_LIBM_1(long double, log10l)
PIER_LIBM_1(long double, log1pl)
PIER_LIBM_1(long double, log2l)
PIER_LIBM_1(long double, logbl)
PIER_LIBM_1(long double, logl)
PIER_LIBM_1(long double, nearbyintl)
PIER_LIBM_1(long double, rintl)
PIER_LIBM_1(long double, roundl)
PIER_LIBM_1(long double, sinhl)
PIER_LIBM_1(long double, sinl)
PIER_LIBM_1(long double, sqrtl)
PIER_LIBM_1(long double, tanhl)
PIER_LIBM_1(long double, tanl)
PIER_LIBM_1(long double, tgammal)
PIER_LIBM_1(long double, truncl)
PIER_LIBM_2(long double, atan2l)
PIER_LIBM_2(long double, fdiml)
PIER_LIBM_2(long double, fmaxl)
PIER_LIBM_2(long double, fminl)
PIER_LIBM_2(long double, fmodl)
PIER_LIBM_2(long double, hypotl)
PIER_LIBM_2(long double, nextafterl)
PIER_LIBM_2(long double, powl)
PIER_LIBM_2(long double, remainderl)
PIER_LIBM_3(long double, fmal)
PIER_LIBM(long double, nanl, (const char *tag), (tag))
PIER_LIBM(long double, lgammal_r, (long double x, int *sign), (x, sign))
PIER_LIBM(long double, remquol, (long double x, long double y, int *quotient), (x, y, quotient))
