//! Linux 6.8-6.18 behaviour where an earlier version of this crate differed:
//! the busy-slot walk, the worker's end-of-pass check, page-node LRU
//! placement, and the store errors of a cgroup with writeback disabled.
#![cfg(not(loom))]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::*;
use kbase::{Error, Gfp};
use zswap_core::{ShrinkControl, ShrinkResult};

/// A slot with `SWAP_HAS_CACHE` set and no folio in the swap cache (a task
/// between `swapcache_prepare` and inserting its folio, or our own caller up
/// the stack) does not stop the dynamic shrinker: Linux's
/// `__read_swap_cache_async(skip_if_exists)` returns NULL, writeback
/// -ENOMEM, and `shrink_memcg_cb` LRU_RETRY: the walk goes on.
#[test]
fn busy_slot_without_folio_does_not_stop_the_dynamic_shrinker() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("busy");
    let a = k.swap_out_stored(&compressible(1), Some(&cg));
    let b = k.swap_out_stored(&compressible(2), Some(&cg));
    // A is being brought in: HAS_CACHE set, no folio yet.
    k.swap.swapcache_prepare(a).unwrap();
    // Two rotations (second chances), A skipped, B written back.
    let mut sc = ShrinkControl::new(Some(cg.clone()), 4);
    assert_eq!(k.zswap.shrinker_scan(&mut sc), ShrinkResult::Freed(1));
    assert_eq!(sc.nr_scanned, 4);
    let s = k.zswap.stats();
    assert_eq!(s.written_back_pages, 1);
    assert_eq!(s.writeback_skip_exists, 1, "the busy slot counts as a skip");
    assert_eq!(s.reject_reclaim_fail, 1);
    assert!(k.zswap.is_present(a) && !k.zswap.is_present(b));
    // The public writeback tells the case apart too: ENOMEM, not EEXIST.
    assert_eq!(k.zswap.writeback(a), Err(Error::ENOMEM));
    assert_eq!(k.zswap.stats().writeback_skip_exists, 2);
    // read_swap_cache_async itself still fails at once with EEXIST.
    assert_eq!(
        k.swap
            .read_swap_cache_async(a, Gfp::KERNEL, true)
            .map(|_| ()),
        Err(Error::EEXIST)
    );
    k.swap.swapcache_clear(a);
    assert_eq!(&k.swap_in(a).unwrap()[..], &compressible(1)[..]);
    assert_eq!(&k.swap_in(b).unwrap()[..], &compressible(2)[..]);
}

/// A folio *found* in the swap cache (a swap-in just made the page hot) is
/// Linux's -EEXIST: the dynamic shrinker stops there (LRU_STOP), while
/// `shrink_memcg` goes on.
#[test]
fn folio_found_in_the_swap_cache_stops_the_dynamic_shrinker() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("found");
    let a = k.swap_out_stored(&compressible(3), Some(&cg));
    let b = k.swap_out_stored(&compressible(4), Some(&cg));
    let (f, new) = k.swap.read_swap_cache_async(a, Gfp::KERNEL, false).unwrap();
    assert!(new);
    let mut sc = ShrinkControl::new(Some(cg.clone()), 4);
    assert_eq!(k.zswap.shrinker_scan(&mut sc), ShrinkResult::Stop);
    assert_eq!(sc.nr_scanned, 3, "stopped at A, B never examined");
    let s = k.zswap.stats();
    assert_eq!((s.written_back_pages, s.writeback_skip_exists), (0, 1));
    assert!(k.zswap.is_present(b));
    // shrink_memcg (no stop flag) skips A and writes B back.
    assert_eq!(k.zswap.shrink_memcg(&cg), Ok(()));
    assert!(!k.zswap.is_present(b));
    // The fault on A completes from zswap.
    k.zswap.load(&f).unwrap();
    k.swap.delete_from_swap_cache(&f);
    f.unlock();
    drop(f);
    k.release(a);
    assert_eq!(&k.swap_in(b).unwrap()[..], &compressible(4)[..]);
    assert_eq!(k.zswap.stats().stored_pages, 0);
}

/// `shrink_worker` is `do { .. } while (zswap_total_pages() > thr)`: the end
/// of a pass over the cgroups (`goto resched`) checks the threshold too, so
/// a worker that starts there with the pool under the threshold writes
/// nothing back.
#[test]
fn shrink_worker_checks_the_threshold_at_the_end_of_a_pass() {
    let k = Kernel::default_kernel();
    let root = k.memcg.as_ref().unwrap().root();
    let a = k.cgroup("a");
    let r1 = k.swap_out(&compressible(1), None).0;
    let r2 = k.swap_out(&compressible(2), None).0;
    let a1 = k.swap_out(&compressible(3), Some(&a)).0;
    k.age(&root, 2);
    k.age(&a, 1);
    assert!((k.zswap.total_pages() as u64) < k.zswap.accept_thr_pages());
    let wb = || k.zswap.stats().written_back_pages;
    // The first cgroup of a run is always tried (root, then `a`).
    k.zswap.shrink_worker();
    assert_eq!(wb(), 1);
    assert!(!k.zswap.is_present(r1));
    k.zswap.shrink_worker();
    assert_eq!(wb(), 2);
    assert!(!k.zswap.is_present(a1));
    // The cursor is at the end of the pass: under the threshold, stop.
    k.zswap.shrink_worker();
    assert_eq!(wb(), 2, "wrote back past the end of a pass");
    assert!(k.zswap.is_present(r2));
    k.zswap.shrink_worker();
    assert_eq!(wb(), 3);
    for s in [r1, r2, a1] {
        k.release(s);
    }
    assert_eq!(k.zswap.stats().stored_pages, 0);
}

/// An entry goes on the LRU list of its page's node (`page_to_nid` of the
/// page stored), not the node of the CPU running the store.
#[test]
fn entries_go_on_the_lru_of_their_pages_node() {
    let k = Kernel::new(Config {
        nr_nodes: 2,
        ..Config::default()
    });
    let cg = k.cgroup("numa");
    // Pages whose first byte is odd live on node 1.
    let node_of: NodeOf = Arc::new(|p| usize::from(p[0] & 1));
    *k.zswap.platform().node_of.lock().unwrap() = Some(node_of);
    let pages: Vec<_> = (0..6u64).map(|i| incompressible(i + 40)).collect();
    let on_1 = pages.iter().filter(|p| p[0] & 1 == 1).count();
    assert!(on_1 > 0 && on_1 < pages.len(), "pages on both nodes");
    let slots: Vec<_> = pages.iter().map(|p| k.swap_out(p, Some(&cg)).0).collect();
    // Raw pages (ratio 1): the count of a node is its list length.
    let count = |nid| {
        let mut sc = ShrinkControl::new(Some(cg.clone()), 64);
        sc.nid = nid;
        k.zswap.shrinker_count(&sc)
    };
    assert_eq!(count(1), on_1 as u64);
    assert_eq!(count(0), (pages.len() - on_1) as u64);
    // The node-1 walk writes back exactly the node-1 pages.
    let mut sc = ShrinkControl::new(Some(cg.clone()), 64);
    sc.nid = 1;
    assert_eq!(k.zswap.shrinker_scan(&mut sc), ShrinkResult::Freed(on_1));
    for (s, p) in slots.iter().zip(&pages) {
        assert_eq!(k.zswap.is_present(*s), p[0] & 1 == 0);
        assert_eq!(&k.swap_in(*s).unwrap()[..], &p[..]);
    }
}

/// `Zswap::store` in a cgroup with `memory.zswap.writeback = 0`: a page that
/// does not shrink cannot be stored raw and is refused with EINVAL, counted
/// in `reject_compress_fail` (Linux 6.18's `zswap_compress`).
#[test]
fn incompressible_page_with_writeback_off_is_einval() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("nowb");
    cg.set_zswap_writeback("0").unwrap();
    let (swp, r) = k.swap_out(&incompressible(7), Some(&cg));
    assert_eq!(r, Err(Error::EINVAL));
    let s = k.zswap.stats();
    assert_eq!((s.reject_compress_fail, s.stored_pages), (1, 0));
    assert!(!k.zswap.is_present(swp));
    // A compressible page of the same cgroup is stored.
    k.swap_out(&compressible(7), Some(&cg)).1.unwrap();
}

/// swapoff end to end: `try_to_unuse` faults every slot in use back in
/// (from zswap, the zeromap or the device), which frees every slot and so
/// invalidates every zswap entry; then `Zswap::swapoff` finds the trees
/// empty and the device goes. `Zswap::swapoff` still refuses (EBUSY) while
/// entries are left.
#[test]
fn swapoff_unuses_every_slot_then_frees_the_empty_trees() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("off");
    let mut pages = std::collections::BTreeMap::new();
    for i in 0..12u8 {
        let p = match i % 3 {
            0 => compressible(i),
            1 => incompressible(u64::from(i)),
            _ => same_filled(0),
        };
        let (s, _) = k.swap_out(&p, Some(&cg));
        pages.insert(s, p);
    }
    // Some go to the device through writeback.
    let first = *pages.keys().next().unwrap();
    k.zswap.writeback(first).unwrap();
    assert!(k.zswap.stats().stored_pages > 0);
    assert_eq!(k.zswap.swapoff(k.swp_type), Err(Error::EBUSY));
    let mut back = std::collections::BTreeMap::new();
    k.swap
        .try_to_unuse(k.swp_type, &mut |e| {
            back.insert(e, k.swap_in(e)?);
            Ok(())
        })
        .unwrap();
    assert_eq!(back.len(), pages.len());
    for (s, p) in &pages {
        assert_eq!(&back[s][..], &p[..], "slot {s:?}");
    }
    let st = k.zswap.stats();
    assert_eq!((st.stored_pages, k.zswap.lru_entries()), (0, 0));
    assert_eq!(k.swap.stats().swpin_zero, 4);
    k.zswap.swapoff(k.swp_type).unwrap();
    k.swap.swapoff(k.swp_type).unwrap();
    assert_eq!(cg.zswap_current(), 0);
    assert_eq!(k.swap.get_swap_pages(1, Gfp::KERNEL), Err(Error::ENOSPC));
}

/// CPU hotplug of the per-CPU compression contexts: a CPU offline when the
/// pool was made gets its contexts when it comes up (`cpu_up`, Linux's
/// cpuhp "prepare"); taking it down while a store on it is compressing
/// frees nothing under the store (Linux's 2024-25 acomp_ctx races), and a
/// later `cpu_up` finds the contexts ready (no second set).
#[test]
fn cpu_down_mid_store_keeps_the_context_and_up_is_idempotent() {
    let k = Kernel::new(Config {
        nr_cpus: 2,
        online_cpus: 1,
        ..Config::default()
    });
    let cpus = &k.zswap.platform().cpus;
    assert_eq!(
        k.zswap.nr_compression_contexts(),
        1,
        "only CPU 0 was online"
    );
    cpus.set_online(1, true);
    k.zswap.cpu_up(1).unwrap();
    assert_eq!(k.zswap.nr_compression_contexts(), 2);
    // A store runs on CPU 1; CPU 1 goes down while it compresses.
    cpus.current.store(1, Ordering::SeqCst);
    let downs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d2 = downs.clone();
    k.set_hook(Some(Arc::new(move |k: &Kernel, ev| {
        if let zswap_core::ZswapEvent::StoreCompressing(_) = ev
            && d2.fetch_add(1, Ordering::SeqCst) == 0
        {
            k.zswap.platform().cpus.set_online(1, false);
            k.zswap.cpu_down(1);
        }
    })));
    let page = compressible(10);
    let x = k.swap_out_stored(&page, None);
    k.set_hook(None);
    assert_eq!(downs.load(Ordering::SeqCst), 1);
    assert_eq!(k.zswap.nr_compression_contexts(), 2, "nothing freed");
    // The task migrated to CPU 0; the CPU comes back: nothing new made.
    cpus.current.store(0, Ordering::SeqCst);
    cpus.set_online(1, true);
    k.zswap.cpu_up(1).unwrap();
    assert_eq!(k.zswap.nr_compression_contexts(), 2);
    assert_eq!(k.zswap.cpu_up(7), Err(Error::EINVAL), "not a possible CPU");
    assert_eq!(&k.swap_in(x).unwrap()[..], &page[..]);
    // A pool made by a compressor switch prepares the CPUs online now.
    cpus.set_online(1, false);
    if zswap_core::CompressorKind::Zstd.is_available() {
        k.zswap.set_param("compressor", "zstd").unwrap();
        assert_eq!(k.zswap.nr_compression_contexts(), 1);
    }
}
