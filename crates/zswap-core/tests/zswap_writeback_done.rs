//! `ZswapPlatform::writeback_folio_done`: the platform hears exactly once
//! about every folio writeback obtained newly allocated (and charged) from
//! `read_swap_cache_async` and that left the swap cache, after zswap let go
//! of it; never about one a failed device write left in the swap cache, nor
//! about a folio writeback found already in the swap cache.
#![cfg(not(loom))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use kbase::{Error, Gfp};
use swapcache::{Folio, SwpEntry};
use zswap_core::ZswapEvent;

/// Charges and done calls since the last call.
fn take(k: &Kernel) -> (Vec<usize>, Vec<WbDone>) {
    let charged = std::mem::take(&mut *k.sp().charged.lock().unwrap());
    let done = std::mem::take(&mut *k.zswap.platform().wb_done.lock().unwrap());
    (charged, done)
}

/// The folio writeback charged (the only charge since `take`) was reported
/// exactly once, unlocked, and in the swap cache iff `cached`.
fn assert_done_once(k: &Kernel, cached: bool) {
    let (charged, done) = take(k);
    assert_eq!(charged.len(), 1, "writeback allocated one folio");
    assert_eq!(
        done,
        vec![WbDone {
            addr: charged[0],
            locked: false,
            cached,
        }]
    );
}

/// Runs `f` once, at the first `WritebackOwned` trace point.
fn at_owned(f: impl Fn(&Kernel, SwpEntry) + Send + Sync + 'static) -> Hook {
    let done = AtomicBool::new(false);
    Arc::new(move |k: &Kernel, ev| {
        if let ZswapEvent::WritebackOwned(s) = ev
            && !done.swap(true, Ordering::SeqCst)
        {
            f(k, s)
        }
    })
}

#[test]
fn writeback_success_reports_its_folio_once() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("ok");
    let x = k.swap_out_stored(&compressible(1), Some(&cg));
    take(&k);
    k.zswap.writeback(x).unwrap();
    assert_eq!(k.zswap.stats().written_back_pages, 1);
    assert_done_once(&k, false);
    // The same through the shrinker's LRU walk.
    let y = k.swap_out_stored(&compressible(2), Some(&cg));
    take(&k);
    k.age(&cg, 1);
    k.zswap.shrink_memcg(&cg).unwrap();
    assert!(!k.zswap.is_present(y));
    assert_done_once(&k, false);
}

#[test]
fn writeback_tree_mismatch_reports_its_folio_once() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("mismatch");
    let page = compressible(3);
    let x = k.swap_out_stored(&page, Some(&cg));
    k.swap.swap_duplicate(x).unwrap(); // a second mapping keeps the slot
    k.age(&cg, 1);
    take(&k);
    // Once the LRU walk picked X, a fault loads it (the entry goes) and its
    // folio leaves the swap cache; writeback then finds the tree changed.
    let fault_folio = Arc::new(std::sync::Mutex::new(0usize));
    let ff = fault_folio.clone();
    let fired = AtomicBool::new(false);
    k.set_hook(Some(Arc::new(move |k: &Kernel, ev| {
        if let ZswapEvent::WritebackPicked(s) = ev
            && !fired.swap(true, Ordering::SeqCst)
        {
            let (f, new) = k.swap.read_swap_cache_async(s, Gfp::KERNEL, false).unwrap();
            assert!(new);
            *ff.lock().unwrap() = &*f as *const Folio as usize;
            k.zswap.load(&f).unwrap();
            k.swap.delete_from_swap_cache(&f);
            f.unlock();
        }
    })));
    let _ = k.zswap.shrink_memcg(&cg);
    k.set_hook(None);
    assert_eq!(k.zswap.stats().written_back_pages, 0);
    let (charged, done) = take(&k);
    // The fault's folio, then writeback's (maybe at the same address, the
    // fault's being freed first): only writeback's is reported.
    assert_eq!(charged.len(), 2);
    assert_eq!(charged[0], *fault_folio.lock().unwrap());
    assert_eq!(
        done,
        vec![WbDone {
            addr: charged[1],
            locked: false,
            cached: false,
        }]
    );
    assert!(k.swap.lookup(x).is_none());
}

#[test]
fn writeback_decompress_failure_reports_its_folio_once() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("corrupt");
    let x = k.swap_out_stored(&compressible(4), Some(&cg));
    k.zswap.debug_corrupt(x).unwrap();
    take(&k);
    assert_eq!(k.zswap.writeback(x), Err(Error::EIO));
    assert!(k.zswap.is_present(x), "entry kept");
    assert_done_once(&k, false);
}

#[test]
fn writeback_bounce_page_failure_reports_its_folio_once() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("bounce");
    let x = k.swap_out_stored(&compressible(5), Some(&cg));
    take(&k);
    // The folio is allocated; the bounce page allocation right after fails.
    k.set_hook(Some(at_owned(|k, _| k.alloc.fail_next(1))));
    assert_eq!(k.zswap.writeback(x), Err(Error::ENOMEM));
    k.set_hook(None);
    assert!(k.zswap.is_present(x), "entry kept");
    assert_done_once(&k, false);
}

/// A failed device write leaves the folio in the swap cache, dirty and
/// charged, holding the only copy: the platform owns it as any swap-cache
/// folio, so it is not reported (reporting it would uncharge a resident
/// folio). Nothing counts as written back, and the failure counts once.
#[test]
fn writeback_device_write_failure_keeps_its_folio_charged_and_unreported() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("eio");
    let page = compressible(6);
    let x = k.swap_out_stored(&page, Some(&cg));
    take(&k);
    k.backend.fail_next_writes(1);
    assert_eq!(k.zswap.writeback(x), Err(Error::EIO));
    let (charged, done) = take(&k);
    assert_eq!(charged.len(), 1, "writeback allocated one folio");
    assert!(
        done.is_empty(),
        "a folio left in the swap cache was reported"
    );
    let s = k.zswap.stats();
    assert_eq!(s.zswpwb, 0);
    assert_eq!(s.written_back_pages, 0);
    assert_eq!(s.reject_reclaim_fail, 1);
    assert_eq!(cg.stat().zswpwb, 0);
    assert_eq!(&k.swap_in(x).unwrap()[..], &page[..]);
}

/// The same through the LRU walk: one failure counter, no `zswpwb`.
#[test]
fn shrink_with_a_failed_device_write_counts_one_failure_and_no_writeback() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("eio-walk");
    let page = compressible(8);
    let x = k.swap_out_stored(&page, Some(&cg));
    take(&k);
    k.backend.fail_next_writes(1);
    // The first walk gives the entry its second chance; a later one tries it.
    let mut tries = 0;
    while k.zswap.stats().reject_reclaim_fail == 0 && tries < 4 {
        let _ = k.zswap.shrink_memcg(&cg);
        tries += 1;
    }
    let s = k.zswap.stats();
    assert_eq!(s.reject_reclaim_fail, 1);
    assert_eq!(s.zswpwb, 0);
    assert_eq!(s.written_back_pages, 0);
    assert_eq!(cg.stat().zswpwb, 0);
    let (_, done) = take(&k);
    assert!(done.is_empty());
    assert_eq!(&k.swap_in(x).unwrap()[..], &page[..]);
}

#[test]
fn writeback_skipping_a_cached_slot_reports_nothing() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("eexist");
    let page = compressible(7);
    let x = k.swap_out_stored(&page, Some(&cg));
    take(&k);
    // A fault holds X's folio in the swap cache.
    let (f, new) = k.swap.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap();
    assert!(new);
    assert_eq!(k.zswap.writeback(x), Err(Error::EEXIST));
    assert_eq!(k.zswap.stats().writeback_skip_exists, 1);
    let (charged, done) = take(&k);
    assert_eq!(charged, vec![&*f as *const Folio as usize]);
    assert!(done.is_empty(), "EEXIST skip reported a folio: {done:?}");
    // The fault completes from zswap.
    k.zswap.load(&f).unwrap();
    k.swap.delete_from_swap_cache(&f);
    f.unlock();
    drop(f);
    assert!(k.zswap.platform().wb_done.lock().unwrap().is_empty());
}
