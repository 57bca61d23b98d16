// Functions marked CALLOSUM_TARGET_CLONES are compiled for AVX-512, AVX2 and the baseline instruction set
// and the loader picks the best the CPU has, once (GCC's target_clones, with ifunc: Linux only).
#pragma once

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define CALLOSUM_TARGET_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CALLOSUM_TARGET_CLONES
#endif
