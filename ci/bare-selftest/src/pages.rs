//! The kernel's page allocator: a free list of page frames over a static
//! arena, with exact counters and a check for frees of pages that are not
//! allocated (a double free or a foreign pointer is counted, never acted on).
//!
//! # Invariants
//!
//! `Frames::stack[..nr_free]` holds the indices of the free frames, each
//! once; `Frames::used` has bit `i` set exactly for the frames handed out.

use core::ptr::NonNull;

use kbase::sync::{Mutex, UnsafeCell};
use kbase::{Error, Gfp, PAGE_SIZE, PageAllocator, PageFrame, Result};

/// Frames of RAM.
pub const NR_PAGES: usize = 2048;

#[repr(C, align(4096))]
struct Memory(UnsafeCell<[[u8; PAGE_SIZE]; NR_PAGES]>);

// SAFETY: frames are handed out one owner at a time under the `PageArena`
// lock; the memory is never accessed through `MEMORY` itself.
unsafe impl Sync for Memory {}

static MEMORY: Memory = Memory(UnsafeCell::new([[0; PAGE_SIZE]; NR_PAGES]));

struct Frames {
    stack: [u16; NR_PAGES],
    nr_free: usize,
    used: [u64; NR_PAGES / 64],
    bad_frees: usize,
}

const fn all_free() -> [u16; NR_PAGES] {
    let mut s = [0u16; NR_PAGES];
    let mut i = 0;
    while i < NR_PAGES {
        // Pop order: frame 0 first.
        s[i] = (NR_PAGES - 1 - i) as u16;
        i += 1;
    }
    s
}

/// The page allocator.
pub struct PageArena {
    frames: Mutex<Frames>,
}

/// The one instance.
pub static PAGES: PageArena = PageArena {
    frames: Mutex::new(Frames {
        stack: all_free(),
        nr_free: NR_PAGES,
        used: [0; NR_PAGES / 64],
        bad_frees: 0,
    }),
};

fn memory() -> *mut u8 {
    MEMORY.0.with_mut(|p| p.cast::<u8>())
}

impl PageArena {
    /// Frames handed out and not yet freed.
    pub fn allocated(&self) -> usize {
        NR_PAGES - self.frames.lock().nr_free
    }

    /// Frees of frames that were not allocated (or not ours).
    pub fn bad_frees(&self) -> usize {
        self.frames.lock().bad_frees
    }
}

// SAFETY: each frame is a distinct, page-aligned `PAGE_SIZE` range of
// `MEMORY`, handed out at most once until freed (the `used` bitmap refuses
// a second free).
unsafe impl PageAllocator for PageArena {
    fn alloc_page(&self, gfp: Gfp) -> Result<PageFrame> {
        let idx = {
            let mut f = self.frames.lock();
            let Some(top) = f.nr_free.checked_sub(1) else {
                return Err(Error::ENOMEM);
            };
            let Some(idx) = f.stack.get(top).map(|&i| usize::from(i)) else {
                return Err(Error::ENOMEM);
            };
            f.nr_free = top;
            if let Some(w) = f.used.get_mut(idx / 64) {
                *w |= 1 << (idx % 64);
            }
            idx
        };
        // SAFETY: `idx < NR_PAGES`, so the frame lies inside `MEMORY`.
        let ptr = unsafe { memory().add(idx * PAGE_SIZE) };
        if gfp.contains(Gfp::ZERO) {
            // SAFETY: the frame is ours alone (just taken off the free list).
            unsafe { ptr.write_bytes(0, PAGE_SIZE) };
        }
        let Some(ptr) = NonNull::new(ptr) else {
            return Err(Error::ENOMEM);
        };
        // SAFETY: valid, page-aligned (MEMORY is), exclusively owned until
        // `free_page`.
        Ok(unsafe { PageFrame::from_raw(ptr) })
    }

    unsafe fn free_page(&self, page: PageFrame) {
        let off = (page.into_raw().as_ptr() as usize).wrapping_sub(memory() as usize);
        let idx = off / PAGE_SIZE;
        let mut f = self.frames.lock();
        let bit = 1u64 << (idx % 64);
        let allocated = off.is_multiple_of(PAGE_SIZE)
            && idx < NR_PAGES
            && f.used.get(idx / 64).is_some_and(|w| w & bit != 0);
        if !allocated {
            f.bad_frees += 1;
            return;
        }
        if let Some(w) = f.used.get_mut(idx / 64) {
            *w &= !bit;
        }
        let top = f.nr_free;
        if let Some(slot) = f.stack.get_mut(top) {
            *slot = idx as u16;
            f.nr_free = top + 1;
        }
    }
}
