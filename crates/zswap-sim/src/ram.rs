//! The machine's RAM: one block of `ram_pages` page frames and a free list,
//! the way a small kernel manages physical memory.
//!
//! Resident program pages, swap-cache folios and zswap's pool pages all come
//! from here, so "free RAM" is exact and the simulator's own memory use
//! follows the simulated RAM: the block is reserved up front but only pages
//! that have been handed out at least once are ever touched (the host maps
//! the rest lazily; a frame is zeroed when first handed out), and freed
//! frames are reused first (LIFO).
//!
//! # Invariants
//!
//! - `base` is the start of an allocation of `ram_pages * PAGE_SIZE` bytes,
//!   aligned to `PAGE_SIZE`, made with `RamBlock::layout`, until
//!   `released` is set (then it is deallocated and never used again).
//! - Every frame index `i < ram_pages` is in exactly one of these states:
//!   never handed out (`i >= next_fresh`), on the `free` list, or owned by
//!   exactly one outstanding [`PageFrame`]; `used` counts the last kind.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::Mutex;

use kbase::{Error, Gfp, PAGE_SIZE, PageAllocator, PageFrame, Result};

struct RamState {
    /// Frames given back, reused first.
    free: Vec<usize>,
    /// Frames `next_fresh..` have never been handed out.
    next_fresh: usize,
    /// Frames out.
    used: usize,
    /// The most frames ever out.
    peak: usize,
    /// The block has been given back to the host.
    released: bool,
}

/// The simulated machine's RAM (see the module documentation).
pub struct SimPageAllocator {
    base: NonNull<u8>,
    ram_pages: usize,
    state: Mutex<RamState>,
}

// SAFETY: the block is plain memory; each frame of it is accessed only
// through the PageFrame that owns it (exclusive by PageFrame's invariant),
// and the bookkeeping is behind a mutex.
unsafe impl Send for SimPageAllocator {}
// SAFETY: as above: shared access only touches the mutex-protected state.
unsafe impl Sync for SimPageAllocator {}

impl std::fmt::Debug for SimPageAllocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPageAllocator")
            .field("ram_pages", &self.ram_pages)
            .field("used", &self.used_pages())
            .finish()
    }
}

/// Layout helper.
struct RamBlock;

impl RamBlock {
    fn layout(ram_pages: usize) -> Option<Layout> {
        Layout::from_size_align(ram_pages.checked_mul(PAGE_SIZE)?, PAGE_SIZE).ok()
    }
}

impl SimPageAllocator {
    /// Reserves a RAM of `ram_pages` pages. The allocator is leaked so it
    /// can be `'static` (folios keep a `&'static dyn PageAllocator`); call
    /// [`SimPageAllocator::release`] when the machine is done to give the
    /// block itself back.
    pub fn leak(ram_pages: usize) -> std::result::Result<&'static SimPageAllocator, String> {
        let ram_pages = ram_pages.max(1);
        let layout = RamBlock::layout(ram_pages).ok_or("RAM size overflows")?;
        // Not alloc_zeroed: with page alignment that writes the whole block
        // and the host would back all of it at once. Frames are zeroed when
        // first handed out instead.
        // SAFETY: the layout has a non-zero size (ram_pages >= 1).
        let raw = unsafe { std::alloc::alloc(layout) };
        let base = NonNull::new(raw).ok_or_else(|| {
            format!(
                "cannot reserve {} MiB of RAM",
                (ram_pages * PAGE_SIZE) >> 20
            )
        })?;
        // INVARIANT: base is a fresh allocation of `layout`; no frame is out.
        Ok(Box::leak(Box::new(SimPageAllocator {
            base,
            ram_pages,
            state: Mutex::new(RamState {
                free: Vec::new(),
                next_fresh: 0,
                used: 0,
                peak: 0,
                released: false,
            }),
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, RamState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pages in use.
    pub fn used_pages(&self) -> u64 {
        self.state().used as u64
    }

    /// Pages free.
    pub fn free_pages(&self) -> u64 {
        (self.ram_pages as u64).saturating_sub(self.used_pages())
    }

    /// The most pages ever in use.
    pub fn peak_pages(&self) -> u64 {
        self.state().peak as u64
    }

    /// Gives the block back to the host if no frame is out; from then on
    /// every allocation fails. Returns whether it was released.
    pub fn release(&self) -> bool {
        let mut st = self.state();
        if st.released || st.used != 0 {
            return st.released;
        }
        st.released = true;
        if let Some(layout) = RamBlock::layout(self.ram_pages) {
            // SAFETY: by the type invariant `base` was allocated with this
            // layout and not yet released; no frame is out (used == 0) and
            // `released` stops any new one, so nothing can touch it again.
            unsafe { std::alloc::dealloc(self.base.as_ptr(), layout) };
        }
        true
    }
}

// SAFETY: frames are distinct PAGE_SIZE-aligned PAGE_SIZE-byte pieces of the
// block (base is PAGE_SIZE-aligned, index < ram_pages), each handed out to at
// most one PageFrame at a time by the type invariant.
unsafe impl PageAllocator for SimPageAllocator {
    fn alloc_page(&self, gfp: Gfp) -> Result<PageFrame> {
        let (idx, fresh) = {
            let mut st = self.state();
            if st.released {
                return Err(Error::ENOMEM);
            }
            let (idx, fresh) = match st.free.pop() {
                Some(i) => (i, false),
                None if st.next_fresh < self.ram_pages => {
                    st.next_fresh += 1;
                    (st.next_fresh - 1, true)
                }
                None => return Err(Error::ENOMEM),
            };
            st.used += 1;
            st.peak = st.peak.max(st.used);
            (idx, fresh)
        };
        // SAFETY: idx < ram_pages, so the offset stays inside the block.
        let ptr = unsafe { self.base.as_ptr().add(idx * PAGE_SIZE) };
        if fresh || gfp.contains(Gfp::ZERO) {
            // A fresh frame is zeroed so no frame ever holds uninitialised
            // bytes; a reused one when the caller asks for zeroed memory.
            // SAFETY: the frame is ours alone (just taken) and PAGE_SIZE
            // bytes long.
            unsafe { ptr.write_bytes(0, PAGE_SIZE) };
        }
        // SAFETY: inside the live block, PAGE_SIZE-aligned, PAGE_SIZE bytes,
        // and owned by no one else (INVARIANT: now counted in `used`).
        Ok(unsafe { PageFrame::from_raw(NonNull::new_unchecked(ptr)) })
    }

    unsafe fn free_page(&self, page: PageFrame) {
        let addr = page.into_raw().as_ptr() as usize;
        let idx = (addr - self.base.as_ptr() as usize) / PAGE_SIZE;
        let mut st = self.state();
        // INVARIANT: the caller gives back a frame of ours; it is free again.
        st.used -= 1;
        st.free.push(idx);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn frames_are_distinct_reused_and_limited() {
        let ram = SimPageAllocator::leak(3).unwrap();
        let mut a = ram.alloc_page(Gfp::KERNEL).unwrap();
        let b = ram.alloc_page(Gfp::KERNEL).unwrap();
        assert_ne!(a.as_ptr(), b.as_ptr());
        assert_eq!(a.as_ptr() as usize % PAGE_SIZE, 0);
        a.as_mut_slice().fill(7);
        let pa = a.as_ptr();
        let c = ram.alloc_page(Gfp::KERNEL).unwrap();
        assert_eq!(ram.alloc_page(Gfp::KERNEL).unwrap_err(), Error::ENOMEM);
        assert_eq!(ram.free_pages(), 0);
        // SAFETY: `a` came from `ram`.
        unsafe { ram.free_page(a) };
        let z = ram.alloc_page(Gfp::ZERO).unwrap();
        assert_eq!(z.as_ptr(), pa, "freed frames are reused first");
        assert!(z.as_slice().iter().all(|&x| x == 0));
        assert!(!ram.release(), "frames are out");
        for f in [b, c, z] {
            // SAFETY: every frame came from `ram`.
            unsafe { ram.free_page(f) };
        }
        assert_eq!(ram.peak_pages(), 3);
        assert!(ram.release());
        assert_eq!(ram.alloc_page(Gfp::KERNEL).unwrap_err(), Error::ENOMEM);
    }
}
