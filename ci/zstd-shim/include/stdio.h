/* Freestanding stdio.h for C zstd on bare metal: zstd only prints in debug
 * builds (DEBUGLEVEL >= 2), which bare-metal builds never use. */
#ifndef ZSWAP_ZSTD_SHIM_STDIO_H
#define ZSWAP_ZSTD_SHIM_STDIO_H
#define fprintf(...) ((void)0)
#define stderr 0
#endif
