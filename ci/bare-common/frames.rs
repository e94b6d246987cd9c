//! Page frames: the RAM a kernel's pages come from (Linux's buddy
//! allocator, reduced to one order). In bare-paging the task, its page
//! tables, the swap cache and zswap's pool share them; in bare-selftest the
//! folios and zswap's pool.
//!
//! [`NR_FRAMES`] frames in a static, page-aligned arena; a stack of free
//! frame numbers and a bitmap of allocated ones (a free of a frame that is
//! not allocated, a double free or a foreign pointer, is counted and
//! ignored). The kernels run with the MMU off or identity-mapped, so a
//! frame's address is both its physical and its kernel virtual address.
//!
//! # Invariants
//!
//! `stack[..nr_free]` holds each free frame number once; bit `i` of `used`
//! is set exactly for the frames handed out.

use core::ptr::NonNull;

use kbase::sync::{Mutex, UnsafeCell};
use kbase::{Error, Gfp, PAGE_SIZE, PageAllocator, PageFrame, Result};

/// Frames of RAM: 8 MiB.
pub const NR_FRAMES: usize = 2048;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[[u8; PAGE_SIZE]; NR_FRAMES]>);

// SAFETY: frames are handed out to one owner at a time under the `Frames`
// lock; the arena is never accessed through `ARENA` itself.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([[0; PAGE_SIZE]; NR_FRAMES]));

struct State {
    stack: [u16; NR_FRAMES],
    nr_free: usize,
    used: [u64; NR_FRAMES / 64],
    bad_frees: usize,
    alloc_failures: usize,
}

/// The frame allocator.
pub struct Frames {
    state: Mutex<State>,
}

const fn all_free() -> [u16; NR_FRAMES] {
    let mut s = [0u16; NR_FRAMES];
    let mut i = 0;
    while i < NR_FRAMES {
        s[i] = (NR_FRAMES - 1 - i) as u16;
        i += 1;
    }
    s
}

/// The one instance.
pub static FRAMES: Frames = Frames {
    state: Mutex::new(State {
        stack: all_free(),
        nr_free: NR_FRAMES,
        used: [0; NR_FRAMES / 64],
        bad_frees: 0,
        alloc_failures: 0,
    }),
};

fn base() -> *mut u8 {
    ARENA.0.with_mut(|p| p.cast::<u8>())
}

impl Frames {
    /// Free frames now.
    pub fn nr_free(&self) -> usize {
        self.state.lock().nr_free
    }

    /// Frees of frames that were not allocated.
    pub fn bad_frees(&self) -> usize {
        self.state.lock().bad_frees
    }

    /// Allocations refused for want of a frame.
    #[allow(dead_code, reason = "bare-paging reports it; bare-selftest does not")]
    pub fn alloc_failures(&self) -> usize {
        self.state.lock().alloc_failures
    }
}

// SAFETY: each frame is a distinct, page-aligned PAGE_SIZE range of the
// arena, handed out at most once until freed (the bitmap refuses a second
// free).
unsafe impl PageAllocator for Frames {
    fn alloc_page(&self, gfp: Gfp) -> Result<PageFrame> {
        let idx = {
            let mut s = self.state.lock();
            let top = s.nr_free.checked_sub(1);
            let Some(idx) = top.and_then(|t| s.stack.get(t)).map(|&i| usize::from(i)) else {
                s.alloc_failures += 1;
                return Err(Error::ENOMEM);
            };
            s.nr_free -= 1;
            if let Some(w) = s.used.get_mut(idx / 64) {
                *w |= 1 << (idx % 64);
            }
            idx
        };
        // SAFETY: idx < NR_FRAMES: the frame lies inside the arena.
        let ptr = unsafe { base().add(idx * PAGE_SIZE) };
        if gfp.contains(Gfp::ZERO) {
            // SAFETY: the frame is ours alone (just taken off the free list).
            unsafe { ptr.write_bytes(0, PAGE_SIZE) };
        }
        let ptr = NonNull::new(ptr).ok_or(Error::ENOMEM)?;
        // SAFETY: valid, page-aligned, exclusively owned until `free_page`.
        Ok(unsafe { PageFrame::from_raw(ptr) })
    }

    unsafe fn free_page(&self, page: PageFrame) {
        let off = (page.into_raw().as_ptr() as usize).wrapping_sub(base() as usize);
        let idx = off / PAGE_SIZE;
        let bit = 1u64 << (idx % 64);
        let mut s = self.state.lock();
        let allocated = off.is_multiple_of(PAGE_SIZE)
            && idx < NR_FRAMES
            && s.used.get(idx / 64).is_some_and(|w| w & bit != 0);
        if !allocated {
            s.bad_frees += 1;
            return;
        }
        if let Some(w) = s.used.get_mut(idx / 64) {
            *w &= !bit;
        }
        let top = s.nr_free;
        if let Some(slot) = s.stack.get_mut(top) {
            *slot = idx as u16;
            s.nr_free = top + 1;
        }
    }
}
