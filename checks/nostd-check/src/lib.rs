//! Links every library crate into a `#![no_std]` staticlib built with
//! `panic = "abort"` (profile `nostd-check`). If any crate, or any of its
//! dependencies, pulls in `std`, the build fails with a duplicate `panic_impl`
//! lang item. Every crate must be `use`d: rustc only loads referenced crates.
#![no_std]

mod refs {
    use kbase as _;
    use memcg as _;
    use swapcache as _;
    use zpool as _;
    use zswap_core as _;
}

struct NoAlloc;

// SAFETY: an allocator that never hands out memory upholds GlobalAlloc's
// contract trivially (null means failure).
unsafe impl core::alloc::GlobalAlloc for NoAlloc {
    unsafe fn alloc(&self, _: core::alloc::Layout) -> *mut u8 {
        core::ptr::null_mut()
    }
    unsafe fn dealloc(&self, _: *mut u8, _: core::alloc::Layout) {}
}

#[global_allocator]
static ALLOC: NoAlloc = NoAlloc;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
