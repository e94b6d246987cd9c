/* Freestanding string.h for C zstd on bare metal: prototypes only; Rust's
 * compiler_builtins provides these symbols on *-none targets. */
#ifndef ZSWAP_ZSTD_SHIM_STRING_H
#define ZSWAP_ZSTD_SHIM_STRING_H
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
#endif
