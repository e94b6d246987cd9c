/* Freestanding assert.h for C zstd on bare metal: asserts compiled out. */
#ifndef ZSWAP_ZSTD_SHIM_ASSERT_H
#define ZSWAP_ZSTD_SHIM_ASSERT_H
#define assert(x) ((void)0)
#endif
