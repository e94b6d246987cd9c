//! Regression tests for the races of the Linux reference notes' section 6
//! that `zswap_regressions.rs` does not cover (by their numbers there: 6,
//! 10, 13, 14, 22), driven through the test kernel and its hooks.
#![cfg(not(loom))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use kbase::{Error, Gfp};
use swapcache::{Folio, SwapBackend, SwpEntry};
use zswap_core::ZswapEvent;

/// Race 13 (and the integration bug behind it): two faults on one slot race
/// writeback. Fault A finds writeback's folio in the swap cache; before A
/// locks it, writeback finishes (the folio leaves the cache) and fault B
/// caches a new folio for the slot and maps it (the slot keeps A's
/// reference). A must re-check under the folio lock that its folio is still
/// the swap cache's for the slot (`do_swap_page`) and retry; otherwise its
/// slot-free deletes the old folio and orphans B's in the swap cache.
#[test]
fn two_faults_on_one_slot_racing_writeback_leave_no_orphan_folio() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("r13");
    let page = compressible(13);
    let x = k.swap_out_stored(&page, Some(&cg));
    k.swap.swap_duplicate(x).unwrap(); // two mappings: faults A and B
    // Writeback's folio: new in the swap cache, filled, unlocked (its
    // device write in flight).
    let (wb, new) = k.swap.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap();
    assert!(new);
    k.zswap.load(&wb).unwrap();
    wb.unlock();
    let wb2 = wb.clone();
    let fired = Arc::new(AtomicBool::new(false));
    let fired2 = fired.clone();
    *k.sp().on_swapin_cached.lock().unwrap() = Some(Arc::new(move |k: &Kernel, s: SwpEntry| {
        fired2.store(true, Ordering::SeqCst);
        // Writeback completes: written, out of the swap cache.
        wb2.lock();
        wb2.with_page(0, |p| k.backend.write_page(s, p))
            .unwrap()
            .unwrap();
        k.swap.delete_from_swap_cache(&wb2);
        wb2.unlock();
        // Fault B: a new folio from the device, mapped; A's reference
        // keeps the slot, so B's folio stays in the swap cache.
        assert_eq!(&k.swap_in(s).unwrap()[..], &compressible(13)[..]);
        assert!(k.swap.lookup(s).is_some());
    }));
    // Fault A.
    assert_eq!(&k.swap_in(x).unwrap()[..], &page[..]);
    assert!(fired.load(Ordering::SeqCst));
    drop(wb);
    assert_eq!(k.swap.swap_count(x), Ok(0));
    assert!(
        k.swap.lookup(x).is_none(),
        "a folio orphaned in the swap cache"
    );
    assert_eq!(k.swap.has_cache(x), Ok(false));
    assert_eq!(k.swap.inuse_pages(k.swp_type), Ok(0));
}

/// Race 6 (25cd241408a2): a load into a folio that is not in the swap cache
/// (a fault that bypassed it and may be discarded) must not drop the zswap
/// copy: it is refused (`EINVAL`), the entry stays, and a retry through the
/// swap cache still finds the data.
#[test]
fn load_into_a_folio_outside_the_swap_cache_keeps_the_entry() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("r6");
    let page = compressible(6);
    let x = k.swap_out_stored(&page, Some(&cg));
    let private = Folio::alloc(k.alloc, 1, Gfp::KERNEL).unwrap();
    private.lock();
    assert_eq!(k.zswap.load(&private), Err(Error::EINVAL));
    private.unlock();
    assert!(k.zswap.is_present(x), "the zswap copy survived");
    assert_eq!(k.zswap.stats().zswpin, 0);
    assert_eq!(&k.swap_in(x).unwrap()[..], &page[..]);
    assert_eq!(k.zswap.stats().zswpin, 1);
}

/// Race 10 ("don't return LRU_SKIP if we have dropped lru lock"): this
/// design cannot hit it. The walker never tries a per-entry lock under the
/// LRU lock (there is none to skip on: entries are owned by the tree, and
/// writeback's exclusion is the swap-cache folio it allocates after the LRU
/// lock is dropped); every examined entry is rotated to the tail *before*
/// the lock is dropped, so an entry that cannot be written back now (its
/// slot busy) is retried last, never skipped in place, and the walk always
/// moves on. Shown here: with the head's slot busy, one walk examines every
/// entry exactly once and writes back all the others.
#[test]
fn walker_never_stalls_on_an_entry_it_cannot_take() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("r10");
    let slots: Vec<_> = (0..4)
        .map(|i| k.swap_out(&compressible(i), Some(&cg)).0)
        .collect();
    k.age(&cg, 4);
    // The head's slot is being brought in by someone else.
    k.swap.swapcache_prepare(slots[0]).unwrap();
    let picked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let p2 = picked.clone();
    k.set_hook(Some(Arc::new(move |_k: &Kernel, ev| {
        if let ZswapEvent::WritebackPicked(s) = ev {
            p2.lock().unwrap().push(s);
        }
    })));
    let mut sc = zswap_core::ShrinkControl::new(Some(cg.clone()), 4);
    assert_eq!(
        k.zswap.shrinker_scan(&mut sc),
        zswap_core::ShrinkResult::Freed(3)
    );
    k.set_hook(None);
    assert_eq!(
        *picked.lock().unwrap(),
        slots,
        "each entry examined once, in order"
    );
    assert!(k.zswap.is_present(slots[0]));
    // The busy entry went to the tail: it is the only one left, and the
    // next walk tries it again.
    assert_eq!(k.zswap.lru_count(Some(&cg)), 1);
    k.swap.swapcache_clear(slots[0]);
    k.zswap.shrink_memcg(&cg).unwrap();
    for (i, s) in slots.iter().enumerate() {
        assert_eq!(&k.swap_in(*s).unwrap()[..], &compressible(i as u8)[..]);
    }
}

/// Race 22: the publication order of `zswap_store_page`. An entry is in the
/// tree before it is on the LRU (and complete before either), so a shrinker
/// can never pick an entry from the LRU that the tree does not hold yet.
/// One thread stores while another walks the LRU; at every pick (the LRU
/// lock just dropped) the picked slot must be in the tree. Only the walker
/// removes entries here, so with the order swapped (LRU add, then tree
/// publish) a pick inside that window fails the check.
#[test]
fn store_publishes_in_the_tree_before_the_lru() {
    let k = Kernel::new(Config {
        swap_pages: 4096,
        ..Config::default()
    });
    let cg = k.cgroup("r22");
    let bad = Arc::new(std::sync::Mutex::new(Vec::new()));
    let picks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (b2, p2) = (bad.clone(), picks.clone());
    k.set_hook(Some(Arc::new(move |k: &Kernel, ev| {
        if let ZswapEvent::WritebackPicked(s) = ev {
            p2.fetch_add(1, Ordering::SeqCst);
            if !k.zswap.is_present(s) {
                b2.lock().unwrap().push(s);
            }
        }
    })));
    let done = Arc::new(AtomicBool::new(false));
    let walker = {
        let (k, cg, done) = (k.clone(), cg.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let mut sc = zswap_core::ShrinkControl::new(Some(cg.clone()), 8);
                let _ = k.zswap.shrinker_scan(&mut sc);
            }
        })
    };
    let mut slots = Vec::new();
    for i in 0..600u32 {
        let s = k.swap_out_stored(&compressible(i as u8), Some(&cg));
        slots.push((s, i as u8));
    }
    done.store(true, Ordering::SeqCst);
    walker.join().unwrap();
    k.set_hook(None);
    assert!(
        picks.load(Ordering::SeqCst) > 0,
        "the walker picked entries"
    );
    assert_eq!(*bad.lock().unwrap(), Vec::<SwpEntry>::new());
    // Whatever went where, every page reads back.
    for (s, seed) in slots {
        assert_eq!(&k.swap_in(s).unwrap()[..], &compressible(seed)[..]);
    }
    assert_eq!(k.zswap.stats().stored_pages, 0);
}
