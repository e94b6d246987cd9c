//! Freestanding round trip of zswap-core's compressors (see Cargo.toml).
//!
//! Exit status: 0 pass; 10+k context creation failed, 20+k compression
//! failed, 30+k the page did not shrink, 40+k decompression failed, 50+k the
//! page changed (k = 0 lz4, 1 zstd); 101 panic.
#![no_std]
#![no_main]

extern crate alloc;

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use kbase::{Gfp, PAGE_SIZE};
use zswap_core::compress::{Compressor, CompressorKind};

/// A bump allocator over a static arena: enough for two compressors.
const HEAP_SIZE: usize = 4 << 20;

#[repr(align(4096))]
struct Arena(core::cell::UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the bump pointer hands out disjoint ranges, so no two users ever
// share bytes of the arena.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(core::cell::UnsafeCell::new([0; HEAP_SIZE]));
static NEXT: AtomicUsize = AtomicUsize::new(0);

struct Bump;

// SAFETY: returns null or a range of the arena aligned as asked, never
// handed out twice.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut cur = NEXT.load(Ordering::Relaxed);
        loop {
            let start = (cur + layout.align() - 1) & !(layout.align() - 1);
            let Some(end) = start.checked_add(layout.size()) else {
                return core::ptr::null_mut();
            };
            if end > HEAP_SIZE {
                return core::ptr::null_mut();
            }
            match NEXT.compare_exchange(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
                // SAFETY: start..end lies inside the arena (checked above).
                Ok(_) => return unsafe { ARENA.0.get().cast::<u8>().add(start) },
                Err(now) => cur = now,
            }
        }
    }
    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump;

#[cfg(target_arch = "x86_64")]
fn exit(code: i32) -> ! {
    // SAFETY: Linux's exit syscall (60) takes the status in rdi and does not
    // return.
    unsafe { core::arch::asm!("syscall", in("rax") 60, in("rdi") code, options(noreturn)) }
}

#[cfg(not(target_arch = "x86_64"))]
fn exit(code: i32) -> ! {
    let _ = core::hint::black_box(code);
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(101)
}

fn run() -> i32 {
    let mut page = [0u8; PAGE_SIZE];
    let mut x: u32 = 12345;
    for (i, b) in page.iter_mut().enumerate() {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        *b = if i % 3 == 0 {
            (x >> 24) as u8
        } else {
            b'a' + (i % 7) as u8
        };
    }
    for (k, kind) in [CompressorKind::Lz4, CompressorKind::Zstd]
        .into_iter()
        .enumerate()
    {
        let k = k as i32;
        let Ok(c) = Compressor::new(kind, 2, Gfp::KERNEL) else {
            return 10 + k;
        };
        let mut z = [0u8; 2 * PAGE_SIZE];
        let len = c.compress(1, &page, |r| {
            r.map(|s| {
                z[..s.len()].copy_from_slice(s);
                s.len()
            })
        });
        let Ok(len) = len else { return 20 + k };
        if len >= PAGE_SIZE {
            return 30 + k;
        }
        let mut out = [0u8; PAGE_SIZE];
        // Split in two, as an object spanning two pool pages.
        if c.decompress(0, &z[..len / 2], &z[len / 2..len], &mut out)
            .is_err()
        {
            return 40 + k;
        }
        if out != page {
            return 50 + k;
        }
        // Damage must not crash; it may go undetected (no checksums).
        z[len / 2] ^= 0x55;
        let _ = core::hint::black_box(c.decompress(0, &z[..len], &[], &mut out));
    }
    0
}

/// The entry point.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    exit(run())
}
