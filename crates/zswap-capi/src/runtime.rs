//! The C kernel's runtime, on bare metal (and with the `c-runtime` feature):
//! the global allocator over `zswap_rust_alloc` / `zswap_rust_free` and the
//! panic handler over `zswap_rust_panic`. The kernel defines the three
//! symbols (the header declares them).

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::{c_char, c_void};

unsafe extern "C" {
    /// Allocates `size` bytes aligned to `align` (a power of two, at most
    /// `ZSWAP_PAGE_SIZE`); NULL on failure. Must not sleep and must not call
    /// into zswap.
    fn zswap_rust_alloc(size: usize, align: usize) -> *mut c_void;
    /// Frees memory from `zswap_rust_alloc` (same size and alignment).
    fn zswap_rust_free(ptr: *mut c_void, size: usize, align: usize);
    /// A bug was hit (file and line of the Rust source): stop the machine
    /// or the task. Must not return.
    fn zswap_rust_panic(file: *const c_char, file_len: usize, line: u32) -> !;
}

/// Metadata allocations (entries, tree leaves, per-CPU buffers) through the
/// kernel's allocator. Every use in the crates is fallible.
struct KernelAlloc;

// SAFETY: forwards to the kernel's allocator, whose contract (header) is
// GlobalAlloc's: a block of at least `size` bytes aligned to `align`, or NULL.
unsafe impl GlobalAlloc for KernelAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: a kernel-provided function called as documented.
        unsafe { zswap_rust_alloc(layout.size(), layout.align()).cast() }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc's
        // contract), which is the kernel function's contract.
        unsafe { zswap_rust_free(ptr.cast(), layout.size(), layout.align()) }
    }
}

#[global_allocator]
static ALLOC: KernelAlloc = KernelAlloc;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (file, line) = match info.location() {
        Some(l) => (l.file(), l.line()),
        None => ("?", 0),
    };
    // SAFETY: a kernel-provided function; `file` is valid for `file.len()`
    // bytes for the call.
    unsafe { zswap_rust_panic(file.as_ptr().cast(), file.len(), line) }
}

/// On a hosted target the precompiled `core` and `alloc` were built for
/// unwinding, and their unwind tables name this personality routine. With
/// panic = abort nothing ever unwinds, so it is never called; it exists only
/// so a C kernel's link finds the symbol. (Bare-metal targets' `core` is
/// built for abort and needs none.)
#[cfg(not(target_os = "none"))]
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}
