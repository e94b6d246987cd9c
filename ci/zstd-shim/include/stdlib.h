/* Freestanding stdlib.h for C zstd on bare metal: the allocator is Rust's
 * zswap_zstd_* (crates/zswap-core/src/compress/zstd_shim.rs). zswap uses
 * static zstd contexts, which never allocate; these only satisfy the link. */
#ifndef ZSWAP_ZSTD_SHIM_STDLIB_H
#define ZSWAP_ZSTD_SHIM_STDLIB_H
#include <stddef.h>
void *zswap_zstd_malloc(size_t size);
void *zswap_zstd_calloc(size_t nmemb, size_t size);
void zswap_zstd_free(void *ptr);
#define malloc(s) zswap_zstd_malloc(s)
#define calloc(n, s) zswap_zstd_calloc((n), (s))
#define free(p) zswap_zstd_free(p)
#endif
