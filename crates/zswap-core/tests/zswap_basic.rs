//! End-to-end behaviour through a small simulated kernel: store, load,
//! invalidate, writeback, shrinkers, limits, parameters, stats.
#![cfg(not(loom))]

mod common;

use common::*;
use kbase::{Error, Gfp, PAGE_SIZE};
use zswap_core::{
    ENTRY_SIZE, METADATA_BYTES_PER_PAGE, METADATA_BYTES_PER_STORED_PAGE, ShrinkControl,
    ShrinkResult, ZswapParams,
};

#[test]
fn entry_size_and_metadata_per_page() {
    assert_eq!(ENTRY_SIZE, 24);
    assert_eq!(METADATA_BYTES_PER_PAGE, 28);
    // zpool: 8-byte handle entry + 4-byte reverse-map entry.
    assert_eq!(METADATA_BYTES_PER_STORED_PAGE, METADATA_BYTES_PER_PAGE + 12);
}

/// An entry records a 32-bit swap offset: a device with more slots is
/// refused at swapon, not truncated later.
#[test]
fn swapon_refuses_a_device_past_32_bit_offsets() {
    let k = Kernel::default_kernel();
    assert_eq!(k.zswap.swapon(7, (1 << 32) + 1), Err(Error::EINVAL));
    k.zswap.swapon(7, 1 << 20).unwrap();
    k.zswap.swapoff(7).unwrap();
}

#[test]
fn store_then_load_round_trips_and_is_exclusive() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("a");
    let page = compressible(7);
    let swp = k.swap_out_stored(&page, Some(&cg));
    let s = k.zswap.stats();
    assert_eq!(s.stored_pages, 1);
    assert_eq!(s.zswpout, 1);
    assert!(s.pool_total_size > 0);
    assert!(k.zswap.is_present(swp));
    assert_eq!(k.zswap.lru_count(Some(&cg)), 1);
    assert!(cg.zswap_current() > 0 && cg.zswap_current() < PAGE_SIZE as u64);
    assert_eq!(cg.stat().zswpout, 1);
    let back = k.swap_in(swp).unwrap();
    assert_eq!(&back[..], &page[..]);
    let s = k.zswap.stats();
    assert_eq!(s.stored_pages, 0);
    assert_eq!(s.zswpin, 1);
    assert!(!k.zswap.is_present(swp));
    assert_eq!(k.zswap.lru_entries(), 0);
    assert_eq!(cg.zswap_current(), 0);
    assert_eq!(cg.stat().zswpin, 1);
}

/// 6.12+: a zero page goes to the swap core's zeromap and never reaches
/// zswap; swap-in fills zeros; `swpout_zero`/`swpin_zero` are counted
/// globally and in the cgroup's `memory.stat`.
#[test]
fn zero_pages_go_to_the_zeromap_not_to_zswap() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("a");
    let (swp, r) = k.swap_out(&same_filled(0), Some(&cg));
    assert_eq!(r, Err(Error::ENOENT), "zswap never saw it");
    let s = k.zswap.stats();
    assert_eq!((s.stored_pages, s.zswpout, s.pool_total_size), (0, 0, 0));
    assert!(k.swap.zeromap_test(swp));
    assert_eq!(k.backend.stored_pages(), 0, "nothing written");
    assert_eq!(k.swap.stats().swpout_zero, 1);
    assert_eq!(cg.stat().swpout_zero, 1);
    assert_eq!(&k.swap_in(swp).unwrap()[..], &same_filled(0)[..]);
    assert_eq!(k.swap.stats().swpin_zero, 1);
    assert_eq!((cg.stat().swpin_zero, cg.stat().zswpin), (1, 0));
    assert!(!k.swap.zeromap_test(swp), "the freed slot's bit is clear");
}

/// A page of one repeated non-zero value is compressed like any other page
/// (`same_filled_pages` went with Linux's same-filled handling): it takes
/// pool space, is on the LRU and can be written back.
#[test]
fn same_value_pages_are_compressed_and_written_back_like_any_page() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("same");
    let page = same_filled(0x5a);
    let swp = k.swap_out_stored(&page, Some(&cg));
    let s = k.zswap.stats();
    assert_eq!(s.stored_pages, 1);
    assert!(s.pool_total_size > 0);
    assert!(cg.stat().zswap > 0);
    assert_eq!(k.zswap.lru_count(Some(&cg)), 1);
    assert_eq!(k.swap.stats().swpout_zero, 0);
    k.zswap.writeback(swp).unwrap();
    assert_eq!(k.zswap.stats().written_back_pages, 1);
    assert_eq!(&k.swap_in(swp).unwrap()[..], &page[..]);
}

#[test]
fn invalidate_on_slot_free_drops_the_entry_and_pool_pages() {
    let k = Kernel::default_kernel();
    let before = k.pages_allocated();
    let mut slots = Vec::new();
    for i in 0..64 {
        let swp = k.swap_out_stored(&compressible(i), None);
        slots.push(swp);
    }
    assert_eq!(k.zswap.stats().stored_pages, 64);
    for s in slots {
        k.release(s);
    }
    let st = k.zswap.stats();
    assert_eq!(st.stored_pages, 0);
    assert_eq!(st.pool_total_size, 0);
    assert_eq!(k.pages_allocated(), before);
}

#[test]
fn shrink_memcg_writes_back_oldest_with_second_chance() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("wb");
    let pages: Vec<_> = (0..4).map(|i| compressible(i * 3 + 1)).collect();
    let slots: Vec<_> = pages.iter().map(|p| k.swap_out(p, Some(&cg)).0).collect();
    // Every entry is referenced: each call examines one entry (Linux's
    // nr_to_walk = 1), so the first four calls only take the second
    // chances away (EAGAIN); the next four write back the oldest, in order.
    for _ in 0..4 {
        assert_eq!(k.zswap.shrink_memcg(&cg), Err(Error::EAGAIN));
    }
    assert_eq!(k.zswap.stats().written_back_pages, 0);
    for (n, slot) in slots.iter().enumerate() {
        k.zswap.shrink_memcg(&cg).unwrap();
        assert_eq!(k.zswap.stats().written_back_pages, n as u64 + 1);
        assert!(!k.zswap.is_present(*slot), "the oldest went first");
    }
    let s = k.zswap.stats();
    assert_eq!(s.written_back_pages, 4);
    assert_eq!(s.zswpwb, 4);
    assert_eq!(cg.stat().zswpwb, 4);
    assert_eq!(s.stored_pages, 0);
    assert_eq!(
        k.swap.lookup(slots[0]).map(|_| ()),
        None,
        "folio left the swap cache"
    );
    // The pages now come from the device, bit-exact.
    for (s, p) in slots.iter().zip(&pages) {
        assert_eq!(&k.swap_in(*s).unwrap()[..], &p[..]);
    }
    assert_eq!(k.zswap.shrink_memcg(&cg), Err(Error::ENOENT));
}

#[test]
fn shrink_memcg_without_writeback_is_enoent() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("nowb");
    cg.set_zswap_writeback("0").unwrap();
    k.swap_out(&compressible(1), Some(&cg)).1.unwrap();
    assert_eq!(k.zswap.shrink_memcg(&cg), Err(Error::ENOENT));
    assert_eq!(k.zswap.stats().written_back_pages, 0);
}

#[test]
fn incompressible_pages_are_stored_raw_when_writeback_is_on() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("incomp");
    let page = incompressible(3);
    let swp = k.swap_out_stored(&page, Some(&cg));
    let s = k.zswap.stats();
    assert_eq!(s.stored_incompressible_pages, 1);
    assert_eq!(cg.stat().zswap_incomp, PAGE_SIZE as u64);
    assert_eq!(&k.swap_in(swp).unwrap()[..], &page[..]);
    assert_eq!(k.zswap.stats().stored_incompressible_pages, 0);
}

#[test]
fn incompressible_pages_are_rejected_when_writeback_is_off() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("incomp_nowb");
    cg.set_zswap_writeback("0").unwrap();
    let page = incompressible(4);
    let (swp, r) = k.swap_out(&page, Some(&cg));
    assert!(r.is_err());
    let s = k.zswap.stats();
    assert_eq!(s.stored_pages, 0);
    assert_eq!(s.reject_compress_fail + s.reject_compress_poor, 1);
    assert!(!k.zswap.is_present(swp));
    assert_eq!(&k.swap_in(swp).unwrap()[..], &page[..]);
}

#[test]
fn global_limit_with_hysteresis_queues_the_worker() {
    // 100 pages of RAM, 10 % limit: 10 pool pages, accept threshold 50 %.
    let k = Kernel::new(Config {
        totalram: 100,
        params: ZswapParams {
            max_pool_percent: 10,
            accept_threshold_percent: 50,
            shrinker_enabled: true,
            ..ZswapParams::default()
        },
        ..Config::default()
    });
    let mut stored = Vec::new();
    let mut rejected = 0;
    for i in 0..200u64 {
        let (swp, r) = k.swap_out(&incompressible(i + 10), None);
        match r {
            Ok(()) => stored.push(swp),
            Err(e) => {
                assert_eq!(e, Error::ENOSPC);
                rejected += 1;
            }
        }
    }
    let s = k.zswap.stats();
    assert!(rejected > 0);
    assert!(s.pool_limit_hit >= 1);
    assert_eq!(s.reject_pool_limit, rejected);
    assert!(k.zswap.total_pages() as u64 <= k.zswap.max_pool_pages() + 1);
    assert!(
        k.zswap
            .platform()
            .queued
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    // Hysteresis: one freed page is not enough to accept again.
    k.release(stored.pop().unwrap());
    let (_, r) = k.swap_out(&incompressible(999), None);
    assert_eq!(r, Err(Error::ENOSPC));
    // The worker shrinks to the accept threshold; then stores are accepted.
    k.zswap.shrink_worker();
    assert!(k.zswap.total_pages() as u64 <= k.zswap.accept_thr_pages());
    let _ = k.swap_out_stored(&incompressible(1000), None);
}

#[test]
fn memcg_zswap_max_shrinks_once_then_stores() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("lim");
    cg.set_zswap_max("4096").unwrap();
    // One raw page: 4096 bytes, the cgroup is at its one-page limit.
    let first = k.swap_out_stored(&incompressible(1), Some(&cg));
    // The next store calls shrink_memcg once, which examines one entry:
    // the first page only loses its second chance, nothing is written back
    // and the store is refused.
    let (second, r) = k.swap_out(&incompressible(2), Some(&cg));
    assert_eq!(r, Err(Error::ENOSPC));
    assert_eq!(k.zswap.stats().written_back_pages, 0);
    assert_eq!(k.zswap.stats().reject_memcg_limit, 1);
    assert!(k.zswap.is_present(first));
    // The one after writes the first page back and proceeds, even though
    // the cgroup stays at its limit.
    let _ = k.swap_out_stored(&incompressible(3), Some(&cg));
    assert_eq!(k.zswap.stats().written_back_pages, 1);
    assert_eq!(&k.swap_in(second).unwrap()[..], &incompressible(2)[..]);
    assert!(!k.zswap.is_present(first));
    assert_eq!(&k.swap_in(first).unwrap()[..], &incompressible(1)[..]);
}

/// Linux 6.8+ has no special case for `memory.zswap.max = 0`: the store
/// calls `shrink_memcg` once and goes ahead if that wrote an entry back.
#[test]
fn memcg_zswap_max_zero_shrinks_once_like_any_limit() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("zero");
    let first = k.swap_out_stored(&compressible(1), Some(&cg));
    cg.set_zswap_max("0").unwrap();
    // The first entry is referenced: the one examined entry only loses its
    // second chance, nothing is written back, the store is refused.
    let (swp, r) = k.swap_out(&compressible(2), Some(&cg));
    assert_eq!(r, Err(Error::ENOSPC));
    let s = k.zswap.stats();
    assert_eq!(
        (s.written_back_pages, s.zswpwb, cg.stat().zswpwb),
        (0, 0, 0)
    );
    assert_eq!(s.reject_memcg_limit, 1);
    assert_eq!(&k.swap_in(swp).unwrap()[..], &compressible(2)[..]);
    // Now the first entry is written back and the store proceeds.
    let third = k.swap_out_stored(&compressible(3), Some(&cg));
    let s = k.zswap.stats();
    assert_eq!((s.written_back_pages, cg.stat().zswpwb), (1, 1));
    assert!(!k.zswap.is_present(first) && k.zswap.is_present(third));
    assert_eq!(&k.swap_in(first).unwrap()[..], &compressible(1)[..]);
}

/// With `memory.zswap.max = 0` and nothing of the cgroup in zswap (the
/// `test_swapin_nozswap` case) nothing is written back and every store is
/// refused.
#[test]
fn memcg_zswap_max_zero_with_an_empty_lru_refuses() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("zero-empty");
    cg.set_zswap_max("0").unwrap();
    for i in 0..3 {
        let (_, r) = k.swap_out(&compressible(i), Some(&cg));
        assert_eq!(r, Err(Error::ENOSPC));
    }
    let s = k.zswap.stats();
    assert_eq!(
        (s.zswpout, s.written_back_pages, s.reject_memcg_limit),
        (0, 0, 3)
    );
}

#[test]
fn dynamic_shrinker_count_and_scan() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("dyn");
    for i in 0..8 {
        k.swap_out(&compressible(i), Some(&cg)).1.unwrap();
    }
    let sc = ShrinkControl::new(Some(cg.clone()), 64);
    let n = k.zswap.shrinker_count(&sc);
    assert!(n > 0 && n <= 8, "scaled by the compression ratio: {n}");
    let mut nofs = sc.clone();
    nofs.gfp = Gfp::NOIO;
    assert_eq!(k.zswap.shrinker_count(&nofs), 0);
    let mut sc = ShrinkControl::new(Some(cg.clone()), 64);
    assert_eq!(k.zswap.shrinker_scan(&mut sc), ShrinkResult::Freed(8));
    assert_eq!(sc.nr_scanned, 16);
    k.zswap.set_param("shrinker_enabled", "0").unwrap();
    k.swap_out(&compressible(9), Some(&cg)).1.unwrap();
    assert_eq!(
        k.zswap
            .shrinker_count(&ShrinkControl::new(Some(cg.clone()), 64)),
        0
    );
    let mut sc = ShrinkControl::new(Some(cg), 64);
    assert_eq!(k.zswap.shrinker_scan(&mut sc), ShrinkResult::Stop);
}

#[test]
fn disk_swapins_reduce_the_shrinker_count() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("prot");
    let swp: Vec<_> = (0..4)
        .map(|i| k.swap_out(&compressible(i), Some(&cg)).0)
        .collect();
    // One entry per call: four second chances, then four writebacks.
    for _ in 0..4 {
        assert_eq!(k.zswap.shrink_memcg(&cg), Err(Error::EAGAIN));
    }
    for _ in 0..4 {
        k.zswap.shrink_memcg(&cg).unwrap();
    }
    // Raw pages: compression ratio 1, so the count is the list length.
    for i in 0..4 {
        k.swap_out(&incompressible(10 + i), Some(&cg)).1.unwrap();
    }
    let sc = ShrinkControl::new(Some(cg.clone()), 64);
    let full = k.zswap.shrinker_count(&sc);
    // Two pages read from the device: the shrinker backs off.
    k.swap_in(swp[0]).unwrap();
    k.swap_in(swp[1]).unwrap();
    let reduced = k.zswap.shrinker_count(&sc);
    assert_eq!(full, 4);
    assert_eq!(reduced, 2);
    // Consumed: the next count is back to the list length.
    assert_eq!(k.zswap.shrinker_count(&sc), 4);
}

#[test]
fn set_param_validates_and_changes_nothing_on_error() {
    let k = Kernel::default_kernel();
    let before = k.zswap.params();
    for (n, v) in [
        ("max_pool_percent", "-1"),
        ("max_pool_percent", "x"),
        ("accept_threshold_percent", "-3"),
        ("enabled", "maybe"),
        ("shrinker_enabled", ""),
        ("nope", "1"),
    ] {
        assert_eq!(k.zswap.set_param(n, v), Err(Error::EINVAL), "{n}={v}");
    }
    // An unknown algorithm is Linux's crypto_has_acomp failure: ENOENT.
    assert_eq!(k.zswap.set_param("compressor", "lzo"), Err(Error::ENOENT));
    assert_eq!(k.zswap.params(), before);
    k.zswap.set_param("max_pool_percent", "33\n").unwrap();
    k.zswap.set_param("enabled", "N").unwrap();
    let p = k.zswap.params();
    assert_eq!((p.max_pool_percent, p.enabled), (33, false));
    let (_, r) = k.swap_out(&compressible(1), None);
    assert_eq!(r, Err(Error::ENOENT));
    assert_eq!(k.zswap.stats().reject_disabled, 1);
}

#[test]
fn stats_iterate_with_linux_names() {
    let k = Kernel::default_kernel();
    let names: Vec<_> = k.zswap.stats().iter().map(|(n, _)| n).collect();
    for n in [
        "stored_pages",
        "stored_incompressible_pages",
        "pool_total_size",
        "pool_limit_hit",
        "written_back_pages",
        "reject_reclaim_fail",
        "reject_alloc_fail",
        "reject_kmemcache_fail",
        "reject_compress_fail",
        "reject_compress_poor",
        "decompress_fail",
        "zswpin",
        "zswpout",
        "zswpwb",
        "writeback_skip_exists",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    assert_eq!(k.zswap.stats().get("stored_pages"), Some(0));
}

#[test]
fn swapoff_refuses_while_entries_remain() {
    let k = Kernel::default_kernel();
    let swp = k.swap_out_stored(&compressible(1), None);
    assert_eq!(k.zswap.swapoff(k.swp_type), Err(Error::EBUSY));
    k.swap_in(swp).unwrap();
    k.swap.swapoff(k.swp_type).unwrap();
    k.zswap.swapoff(k.swp_type).unwrap();
    assert_eq!(k.zswap.swapoff(k.swp_type), Err(Error::EINVAL));
}

#[test]
fn trees_are_split_per_64_mib() {
    let k = Kernel::new(Config {
        swap_pages: 3 * 16384 + 5,
        ..Config::default()
    });
    // Slots in different trees work independently.
    let mut slots = Vec::new();
    for i in 0..3 {
        let s = k.swap_out_stored(&compressible(i), None);
        slots.push(s);
    }
    assert!(slots.iter().all(|s| k.zswap.is_present(*s)));
}

#[test]
fn dropping_zswap_frees_every_pool_page() {
    let k = Kernel::default_kernel();
    for i in 0..32 {
        k.swap_out(&compressible(i), None).1.unwrap();
    }
    assert!(k.pages_allocated() > 0);
    let alloc = k.alloc;
    drop(k);
    assert_eq!(alloc.inner().allocated_pages(), 0);
}

#[test]
fn explicit_writeback_of_one_slot() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("wb1");
    let page = compressible(11);
    let x = k.swap_out_stored(&page, Some(&cg));
    let (zero, r) = k.swap_out(&same_filled(0), Some(&cg));
    assert_eq!(r, Err(Error::ENOENT));
    assert_eq!(k.zswap.writeback(zero), Err(Error::ENOENT), "not in zswap");
    k.zswap.writeback(x).unwrap();
    assert_eq!(k.zswap.writeback(x), Err(Error::ENOENT));
    let s = k.zswap.stats();
    assert_eq!((s.written_back_pages, s.zswpwb, s.stored_pages), (1, 1, 0));
    assert_eq!(&k.swap_in(x).unwrap()[..], &page[..]);
    assert_eq!(&k.swap_in(zero).unwrap()[..], &same_filled(0)[..]);
}

#[test]
fn pool_allocation_failures_reject_cleanly() {
    let k = Kernel::default_kernel();
    let mut slots = Vec::new();
    k.alloc.fail_every(2);
    for i in 0..64u64 {
        let page = incompressible(i);
        let (s, r) = k.swap_out(&page, None);
        if let Err(e) = r {
            assert_eq!(e, Error::ENOMEM);
            assert!(!k.zswap.is_present(s));
        }
        slots.push((s, page));
    }
    k.alloc.fail_every(0);
    let st = k.zswap.stats();
    assert!(k.alloc.injected_failures() > 0);
    // Pool pages and entry-cache slabs both come from the failing page
    // allocator: a failure is counted as the one or the other.
    assert!(st.reject_alloc_fail + st.reject_kmemcache_fail > 0);
    assert_eq!(
        st.zswpout + st.reject_alloc_fail + st.reject_kmemcache_fail,
        64,
        "one counter per failure"
    );
    for (s, page) in slots {
        assert_eq!(&k.swap_in(s).unwrap()[..], &page[..]);
    }
    assert_eq!(k.zswap.stats().stored_pages, 0);
    assert_eq!(k.pages_allocated(), 0);
}

#[test]
fn writeback_device_write_failure_keeps_the_page_in_the_swap_cache() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("ioerr");
    let page = compressible(21);
    let x = k.swap_out_stored(&page, Some(&cg));
    k.backend.fail_next_writes(1);
    assert_eq!(k.zswap.writeback(x), Err(Error::EIO));
    assert!(!k.zswap.is_present(x));
    let f = k.swap.lookup(x).expect("the page stays in the swap cache");
    assert!(f.test_dirty() && f.test_uptodate() && !f.is_locked());
    drop(f);
    // The next fault finds it there.
    assert_eq!(&k.swap_in(x).unwrap()[..], &page[..]);
    assert_eq!(k.zswap.stats().stored_pages, 0);
}

#[test]
fn bad_input_gets_errors_not_panics() {
    let k = Kernel::default_kernel();
    let far = swapcache::SwpEntry::new(k.swp_type, 1 << 40).unwrap();
    let other_type = swapcache::SwpEntry::new(7, 3).unwrap();
    for s in [far, other_type] {
        assert!(!k.zswap.is_present(s));
        k.zswap.invalidate(s);
        k.zswap.invalidate_range(s, 3);
        assert_eq!(k.zswap.writeback(s), Err(Error::ENOENT));
        assert_eq!(k.zswap.debug_corrupt(s), Err(Error::ENOENT));
    }
    // Folios outside the swap cache.
    let f = k.page_folio(&compressible(1));
    f.lock();
    assert_eq!(k.zswap.store(&f), Err(Error::EINVAL));
    assert_eq!(k.zswap.load(&f), Err(Error::EINVAL));
    f.unlock();
    // swapon / swapoff arguments.
    assert_eq!(k.zswap.swapon(99, 10), Err(Error::EINVAL));
    assert_eq!(k.zswap.swapon(3, 0), Err(Error::EINVAL));
    assert_eq!(k.zswap.swapon(k.swp_type, 10), Err(Error::EBUSY));
    assert_eq!(k.zswap.swapoff(31), Err(Error::EINVAL));
    assert_eq!(k.zswap.swapoff(1000), Err(Error::EINVAL));
    let s = k.zswap.stats();
    assert_eq!(s.stored_pages, 0);
    assert_eq!(s.reject_disabled + s.reject_alloc_fail, 0);
}

/// Pages charged to no cgroup go on root's LRU lists store after store:
/// the record they are keyed by stays through every entry's free and
/// through the offline of a cgroup reparented onto root, whose entries then
/// share root's lists and are written back from there, oldest first.
#[test]
fn uncharged_pages_stay_on_roots_lru_through_frees_and_reparenting() {
    let k = Kernel::default_kernel();
    let tree = k.memcg.as_ref().unwrap();
    let root = tree.root();
    let first: Vec<_> = (0..4)
        .map(|i| k.swap_out_stored(&compressible(i), None))
        .collect();
    assert_eq!(k.zswap.lru_count(Some(&root)), 4);
    for s in first {
        k.release(s);
    }
    assert_eq!(k.zswap.lru_entries(), 0);
    let cg = k.cgroup("x");
    let theirs: Vec<_> = (10..13)
        .map(|i| k.swap_out_stored(&compressible(i), Some(&cg)))
        .collect();
    tree.offline("x").unwrap();
    k.zswap.memcg_offline(&cg).unwrap();
    let ours: Vec<_> = (20..22)
        .map(|i| k.swap_out_stored(&compressible(i), None))
        .collect();
    assert_eq!(k.zswap.lru_count(None), 5);
    assert_eq!(k.zswap.lru_count(Some(&cg)), 0);
    k.age(&root, 5);
    k.zswap.shrink_memcg(&root).unwrap();
    assert!(!k.zswap.is_present(theirs[0]), "the dead cgroup's go first");
    assert!(ours.iter().all(|s| k.zswap.is_present(*s)));
    assert_eq!(k.zswap.lru_count(None), 4);
    for s in theirs.into_iter().chain(ours) {
        k.release(s);
    }
    assert_eq!(k.zswap.lru_entries(), 0);
    assert_eq!(k.zswap.stats().stored_pages, 0);
}
