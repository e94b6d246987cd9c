//! One test per step of the protocols in zswap-core's crate docs, each
//! written so that it fails when that step is taken out of the code: the
//! step's effect is observed at the moment it matters, before any later
//! step (freeing the slot, a second walk, ...) could hide its absence.
#![cfg(not(loom))]

mod common;

use common::{Kernel, compressible};
use kbase::Gfp;

/// Exclusive load: once `load` returns, zswap no longer holds the page, and
/// that is true *before* the swap-in frees the slot (whose `slot_freed`
/// invalidates the entry anyway, so a check after the fault proves nothing).
/// The folio is dirty: it holds the only copy.
#[test]
fn load_erases_the_entry_before_the_slot_is_freed() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("excl");
    let page = compressible(9);
    let swp = k.swap_out_stored(&page, Some(&cg));
    assert!(k.zswap.is_present(swp));
    let (folio, new) = k
        .swap
        .read_swap_cache_async(swp, Gfp::KERNEL, false)
        .unwrap();
    assert!(new);
    k.zswap.load(&folio).unwrap();
    // The slot is still allocated and the folio still in the swap cache.
    assert_eq!(k.swap.swap_count(swp), Ok(1));
    assert!(k.swap.lookup(swp).is_some());
    assert!(!k.zswap.is_present(swp), "load left the entry in zswap");
    let s = k.zswap.stats();
    assert_eq!((s.stored_pages, s.zswpin), (0, 1));
    assert_eq!(k.zswap.lru_entries(), 0, "entry still on the LRU");
    assert_eq!(cg.zswap_current(), 0, "compressed bytes still charged");
    assert!(folio.test_dirty(), "the folio holds the only copy");
    folio
        .with_page(0, |p| assert_eq!(&p[..], &page[..]))
        .unwrap();
    // A second load finds nothing: the page now lives only in the folio.
    assert_eq!(k.zswap.load(&folio), Err(kbase::Error::ENOENT));
    folio.unlock();
    k.release(swp);
    assert_eq!(k.zswap.stats().zswpin, 1);
}

/// The LRU walker rotates the entry it picked to the tail *before* it drops
/// the LRU lock, so an entry whose writeback is skipped (its slot is busy:
/// being swapped in) is tried last and the walk reaches the next entry.
/// Without the rotation the busy entry stays at the head and every walk
/// stops on it.
#[test]
fn walker_rotates_a_busy_entry_to_the_tail() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("rot");
    let a = k.swap_out_stored(&compressible(1), Some(&cg));
    let pb = compressible(2);
    let b = k.swap_out_stored(&pb, Some(&cg));
    // A swap-in of `a` is in progress: its folio is in the swap cache,
    // locked, not yet read.
    let (fa, new) = k.swap.read_swap_cache_async(a, Gfp::KERNEL, false).unwrap();
    assert!(new);
    let mut calls = 0;
    while k.zswap.is_present(b) && calls < 8 {
        let _ = k.zswap.shrink_memcg(&cg);
        calls += 1;
    }
    assert!(
        !k.zswap.is_present(b),
        "the walk never got past the busy entry at the head ({calls} calls)"
    );
    assert!(k.zswap.is_present(a), "the busy entry must be skipped");
    let s = k.zswap.stats();
    assert_eq!(s.written_back_pages, 1);
    assert!(s.writeback_skip_exists >= 1);
    assert_eq!(k.zswap.lru_count(Some(&cg)), 1);
    // The swap-in of `a` completes from zswap; `b` reads back from the
    // device.
    k.zswap.load(&fa).unwrap();
    fa.unlock();
    drop(fa);
    assert_eq!(&k.swap_in(b).unwrap()[..], &pb[..]);
}
