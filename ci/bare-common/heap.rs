//! The global allocator: power-of-two size classes over a static arena.
//!
//! Blocks are carved from the arena by a bump pointer and, once freed, kept
//! on a free list per size class (the next pointer lives in the free block)
//! for reuse by the same class. No coalescing, no splitting: enough for
//! these kernels, whose heap allocations (the crates' metadata) are small
//! and recur. Exhaustion returns null
//! (callers in the zswap crates turn it into `ENOMEM`); nothing here panics.
//!
//! # Invariants
//!
//! - `Heap::bump <= HEAP_SIZE`; every byte below it belongs to exactly one
//!   block, handed out or on one free list.
//! - `Heap::free[c]` is 0 or one plus the arena offset of a free block of
//!   `1 << (c + MIN_SHIFT)` bytes whose first word holds the next link in the
//!   same encoding.

use core::alloc::{GlobalAlloc, Layout};

use kbase::sync::{Mutex, UnsafeCell};

/// Bytes of the arena.
pub const HEAP_SIZE: usize = 16 << 20;
/// The smallest block: 16 bytes (room for the free-list link).
const MIN_SHIFT: u32 = 4;
/// The largest block: the whole arena.
const MAX_SHIFT: u32 = HEAP_SIZE.trailing_zeros();
const NR_CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Blocks are aligned to their size, up to this.
const MAX_NATURAL_ALIGN: usize = 4096;

#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the allocator hands out disjoint blocks of the arena, under the
// `HEAP` lock; the arena itself is never read or written through `ARENA`.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; HEAP_SIZE]));

struct Heap {
    bump: usize,
    free: [usize; NR_CLASSES],
    failures: usize,
}

static HEAP: Mutex<Heap> = Mutex::new(Heap {
    bump: 0,
    free: [0; NR_CLASSES],
    failures: 0,
});

fn base() -> *mut u8 {
    ARENA.0.with_mut(|p| p.cast::<u8>())
}

/// The size class of `layout`: its index and block size. `None` if larger
/// than the arena.
fn class_of(layout: Layout) -> Option<(usize, usize)> {
    let want = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    let size = want.checked_next_power_of_two()?;
    let shift = size.trailing_zeros();
    if shift > MAX_SHIFT {
        return None;
    }
    Some(((shift - MIN_SHIFT) as usize, size))
}

/// The global allocator.
pub struct ArenaAlloc;

impl ArenaAlloc {
    /// Allocations refused because the arena was exhausted.
    pub fn failures(&self) -> usize {
        HEAP.lock().failures
    }
}

// SAFETY: every block is a distinct range of the arena (bump carving never
// goes back; a freed block is reused only after its owner gave it back),
// aligned to `layout.align()` (checked on reuse, arranged when carving), and
// at least `layout.size()` bytes (its class).
unsafe impl GlobalAlloc for ArenaAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut h = HEAP.lock();
        let Some((class, size)) = class_of(layout) else {
            h.failures += 1;
            return core::ptr::null_mut();
        };
        let Some(head) = h.free.get(class).copied() else {
            h.failures += 1;
            return core::ptr::null_mut();
        };
        let b = base() as usize;
        let off = if head != 0 && (b + head - 1).is_multiple_of(layout.align()) {
            let off = head - 1;
            // SAFETY: by the invariant, a free block of this class starts at
            // `off`, its first word holds the next link and nobody else
            // touches it while it is free.
            let next = unsafe { base().add(off).cast::<usize>().read() };
            if let Some(slot) = h.free.get_mut(class) {
                *slot = next;
            }
            off
        } else {
            let align = size.min(MAX_NATURAL_ALIGN).max(layout.align());
            // Align the address, not the offset (the arena is only
            // page-aligned).
            let Some(start) = (b + h.bump).checked_next_multiple_of(align).map(|a| a - b) else {
                h.failures += 1;
                return core::ptr::null_mut();
            };
            match start.checked_add(size) {
                Some(end) if end <= HEAP_SIZE => {
                    h.bump = end;
                    start
                }
                _ => {
                    h.failures += 1;
                    return core::ptr::null_mut();
                }
            }
        };
        // SAFETY: `off + size <= HEAP_SIZE` (carved or reused block).
        unsafe { base().add(off) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((class, _)) = class_of(layout) else {
            return;
        };
        let off = (ptr as usize).wrapping_sub(base() as usize);
        if off >= HEAP_SIZE {
            return;
        }
        let mut h = HEAP.lock();
        let Some(head) = h.free.get(class).copied() else {
            return;
        };
        // SAFETY: the caller gives back a block `alloc` handed out for this
        // layout: at least 16 bytes, 16-aligned, and no longer used.
        unsafe { ptr.cast::<usize>().write(head) };
        if let Some(slot) = h.free.get_mut(class) {
            *slot = off + 1;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let same = match Layout::from_size_align(new_size, layout.align()) {
            Ok(new) => class_of(new).is_some_and(|c| Some(c) == class_of(layout)),
            Err(_) => return core::ptr::null_mut(),
        };
        if same {
            return ptr;
        }
        // SAFETY: `new_size` with `layout.align()` is a valid layout
        // (checked above); the caller's contract carries over.
        let new =
            unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and
            // distinct; the old block is freed only after the copy.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
