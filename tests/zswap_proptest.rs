//! Random swap-out (small and large folios) / swap-in / process-exit /
//! writeback / shrink / cgroup offline / parameter-change sequences, with
//! injected page-allocation and device-write failures, against a plain model
//! (`BTreeMap<slot, page bytes>`): every page swapped out reads back
//! bit-exact, from zswap, the swap cache or the device; zswap's counters
//! match what the model saw; no pool page is leaked.
//!
//! 256 cases by default; `ZSWAP_PROPTEST_CASES=N` runs N.
#![cfg(not(loom))]

#[path = "../crates/zswap-core/tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use kbase::{Error, PAGE_SIZE};
use proptest::prelude::*;
use swapcache::SwpEntry;
use zswap_core::{ShrinkControl, ZswapParams};

#[derive(Clone, Debug)]
enum Kind {
    Compressible(u8),
    Incompressible(u64),
    SameFilled(u8),
}

#[derive(Clone, Debug)]
enum Op {
    SwapOut(Kind, usize),
    /// A large folio of 2^order pages.
    SwapOutLarge(Vec<Kind>, usize),
    /// A swap-out with the next `n` page allocations failing.
    SwapOutAllocFail(Kind, usize, usize),
    /// `shrink_memcg` with the next `n` page allocations failing.
    ShrinkAllocFail(usize, usize),
    /// `shrink_memcg` with the next device write failing.
    ShrinkWriteFail(usize),
    Compressor(bool),
    /// `memory.zswap.max` in pages (`None`: "max").
    ZswapMax(usize, Option<u64>),
    /// `memory.zswap.writeback`.
    ZswapWriteback(usize, bool),
    SwapIn(usize),
    Release(usize),
    ShrinkMemcg(usize),
    ShrinkerScan(usize, usize),
    Worker,
    Offline(usize),
    Enable(bool),
    MaxPool(u32),
}

const CGROUPS: usize = 3;

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => any::<u8>().prop_map(Kind::Compressible),
        2 => any::<u64>().prop_map(Kind::Incompressible),
        1 => any::<u8>().prop_map(Kind::SameFilled),
        1 => Just(Kind::SameFilled(0)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (kind(), 0..CGROUPS).prop_map(|(k, c)| Op::SwapOut(k, c)),
        2 => (prop_oneof![Just(2usize), Just(4)], 0..CGROUPS)
            .prop_flat_map(|(n, c)| (proptest::collection::vec(kind(), n), Just(c)))
            .prop_map(|(ks, c)| Op::SwapOutLarge(ks, c)),
        1 => (kind(), 0..CGROUPS, 1..3usize).prop_map(|(k, c, n)| Op::SwapOutAllocFail(k, c, n)),
        1 => (0..CGROUPS, 1..3usize).prop_map(|(c, n)| Op::ShrinkAllocFail(c, n)),
        1 => (0..CGROUPS).prop_map(Op::ShrinkWriteFail),
        1 => any::<bool>().prop_map(Op::Compressor),
        1 => (0..CGROUPS, proptest::option::of(0u64..4)).prop_map(|(c, m)| Op::ZswapMax(c, m)),
        1 => (0..CGROUPS, any::<bool>()).prop_map(|(c, on)| Op::ZswapWriteback(c, on)),
        4 => any::<usize>().prop_map(Op::SwapIn),
        2 => any::<usize>().prop_map(Op::Release),
        2 => (0..CGROUPS).prop_map(Op::ShrinkMemcg),
        1 => (0..CGROUPS, 1..16usize).prop_map(|(c, n)| Op::ShrinkerScan(c, n)),
        1 => Just(Op::Worker),
        1 => (1..CGROUPS).prop_map(Op::Offline),
        1 => any::<bool>().prop_map(Op::Enable),
        1 => prop_oneof![Just(1u32), Just(5), Just(20)].prop_map(Op::MaxPool),
    ]
}

fn page(k: &Kind) -> Box<[u8; PAGE_SIZE]> {
    match *k {
        Kind::Compressible(s) => compressible(s),
        Kind::Incompressible(s) => incompressible(s),
        Kind::SameFilled(b) => same_filled(b),
    }
}

fn nth(map: &BTreeMap<SwpEntry, Box<[u8; PAGE_SIZE]>>, i: usize) -> Option<SwpEntry> {
    if map.is_empty() {
        return None;
    }
    map.keys().nth(i % map.len()).copied()
}

fn run(ops: Vec<Op>) {
    let k = Kernel::new(Config {
        totalram: 256,
        swap_pages: 64,
        memcg: true,
        params: ZswapParams {
            shrinker_enabled: true,
            ..ZswapParams::default()
        },
        ..Config::default()
    });
    let cgs: Vec<_> = (0..CGROUPS).map(|i| k.cgroup(&format!("c{i}"))).collect();
    let mut offline = BTreeSet::new();
    // Model: every swapped-out page, and which of them zswap holds.
    let mut model: BTreeMap<SwpEntry, Box<[u8; PAGE_SIZE]>> = BTreeMap::new();
    let mut in_zswap: BTreeSet<SwpEntry> = BTreeSet::new();
    let (mut zswpout, mut zswpin, mut written_back) = (0u64, 0u64, 0u64);
    // Failed store calls (one per folio): each bumps exactly one counter.
    let mut store_failures = 0u64;
    // A failed device write this step: entries that left zswap may sit in
    // the swap cache instead of on the device.
    let mut write_failed;

    for op in ops {
        write_failed = false;
        match op {
            Op::SwapOut(kind, c) => {
                if k.swap.inuse_pages(k.swp_type).unwrap() >= 64 {
                    continue;
                }
                let p = page(&kind);
                // A zero page goes to the swap core's zeromap: zswap never
                // sees it (6.12+).
                let zero = p.iter().all(|b| *b == 0);
                let (swp, r) = k.swap_out(&p, Some(&cgs[c]));
                assert_eq!(zero, k.swap.zeromap_test(swp));
                if r.is_ok() {
                    zswpout += 1;
                    in_zswap.insert(swp);
                } else if !zero {
                    store_failures += 1;
                }
                assert!(model.insert(swp, p).is_none(), "slot handed out twice");
            }
            Op::SwapOutAllocFail(kind, c, n) => {
                if k.swap.inuse_pages(k.swp_type).unwrap() >= 64 {
                    continue;
                }
                let p = page(&kind);
                let zero = p.iter().all(|b| *b == 0);
                let f = k.page_folio(&p);
                k.alloc.fail_next(n);
                let (swp, r) = k.swap_out_folio(&f, Some(&cgs[c]));
                k.alloc.fail_next(0);
                if r.is_ok() {
                    zswpout += 1;
                    in_zswap.insert(swp);
                } else if !zero {
                    store_failures += 1;
                }
                assert!(model.insert(swp, p).is_none(), "slot handed out twice");
            }
            Op::SwapOutLarge(kinds, c) => {
                let nr = kinds.len();
                if k.swap.inuse_pages(k.swp_type).unwrap() + nr as u64 > 64 {
                    continue;
                }
                let f = swapcache::Folio::alloc(k.alloc, nr, kbase::Gfp::KERNEL).unwrap();
                let pages: Vec<_> = kinds.iter().map(page).collect();
                for (i, p) in pages.iter().enumerate() {
                    f.with_page_mut(i, |d| d.copy_from_slice(&p[..])).unwrap();
                }
                let zero = pages.iter().all(|p| p.iter().all(|b| *b == 0));
                let (swp, r) = k.swap_out_folio(&f, Some(&cgs[c]));
                drop(f);
                for (i, p) in pages.into_iter().enumerate() {
                    let s = swp.checked_add(i as u64).unwrap();
                    if r.is_ok() {
                        in_zswap.insert(s);
                    }
                    assert!(model.insert(s, p).is_none(), "slot handed out twice");
                    // Large folios are all or nothing.
                    assert_eq!(k.zswap.is_present(s), r.is_ok());
                }
                if r.is_ok() {
                    zswpout += nr as u64;
                } else if !zero {
                    store_failures += 1;
                }
                // Mapped again page by page: each slot is freed on its own
                // (the split a large folio's swap-in does here).
            }
            Op::ShrinkAllocFail(c, n) => {
                k.alloc.fail_next(n);
                let _ = k.zswap.shrink_memcg(&cgs[c]);
                k.alloc.fail_next(0);
            }
            Op::ShrinkWriteFail(c) => {
                k.backend.fail_next_writes(1);
                let _ = k.zswap.shrink_memcg(&cgs[c]);
                k.backend.fail_next_writes(0);
                write_failed = true;
            }
            Op::Compressor(zstd) => {
                let r = k
                    .zswap
                    .set_param("compressor", if zstd { "zstd" } else { "lz4" });
                // zstd is a build feature: ENOENT when it is not built in.
                assert!(r.is_ok() || (zstd && r == Err(Error::ENOENT)), "{r:?}");
            }
            Op::ZswapMax(c, pages) => {
                let v = pages.map_or("max".to_string(), |p| (p * PAGE_SIZE as u64).to_string());
                let r = cgs[c].set_zswap_max(&v);
                assert!(r.is_ok() || offline.contains(&c), "{r:?}");
            }
            Op::ZswapWriteback(c, on) => {
                let r = cgs[c].set_zswap_writeback(if on { "1" } else { "0" });
                assert!(r.is_ok() || offline.contains(&c), "{r:?}");
            }
            Op::SwapIn(i) => {
                let Some(swp) = nth(&model, i) else { continue };
                let was = k.zswap.is_present(swp);
                assert_eq!(was, in_zswap.contains(&swp));
                let got = k.swap_in(swp).unwrap();
                assert_eq!(&got[..], &model[&swp][..], "page {swp:?} corrupted");
                if was {
                    zswpin += 1;
                }
                in_zswap.remove(&swp);
                model.remove(&swp);
            }
            Op::Release(i) => {
                let Some(swp) = nth(&model, i) else { continue };
                k.release(swp);
                in_zswap.remove(&swp);
                model.remove(&swp);
                assert!(!k.zswap.is_present(swp));
            }
            Op::ShrinkMemcg(c) => {
                let r = k.zswap.shrink_memcg(&cgs[c]);
                if offline.contains(&c) {
                    assert_eq!(r, Err(Error::ENOENT));
                }
            }
            Op::ShrinkerScan(c, n) => {
                let mut sc = ShrinkControl::new(Some(cgs[c].clone()), n);
                let _ = k.zswap.shrinker_scan(&mut sc);
                assert!(sc.nr_scanned <= n);
            }
            Op::Worker => k.zswap.shrink_worker(),
            Op::Offline(c) => {
                if offline.insert(c) {
                    k.memcg.as_ref().unwrap().offline(&format!("c{c}")).unwrap();
                    k.zswap.memcg_offline(&cgs[c]).unwrap();
                }
            }
            Op::Enable(on) => k
                .zswap
                .set_param("enabled", if on { "1" } else { "0" })
                .unwrap(),
            Op::MaxPool(p) => k
                .zswap
                .set_param("max_pool_percent", &p.to_string())
                .unwrap(),
        }
        // Entries that left zswap without a load or a free were written back
        // (or, after a failed device write, sit dirty in the swap cache).
        let gone: Vec<_> = in_zswap
            .iter()
            .filter(|s| !k.zswap.is_present(**s))
            .copied()
            .collect();
        for s in gone {
            in_zswap.remove(&s);
            if write_failed && k.swap.lookup(s).is_some() {
                continue;
            }
            written_back += 1;
        }
        let s = k.zswap.stats();
        assert_eq!(s.stored_pages, in_zswap.len() as u64);
        assert_eq!(s.zswpout, zswpout);
        assert_eq!(s.zswpin, zswpin);
        assert_eq!(s.written_back_pages, written_back);
        assert_eq!(s.zswpwb, written_back);
        // Every store either succeeded or bumped exactly one reject counter.
        let rejects = s.reject_alloc_fail
            + s.reject_kmemcache_fail
            + s.reject_compress_fail
            + s.reject_compress_poor
            + s.reject_disabled
            + s.reject_memcg_limit
            + s.reject_pool_limit;
        assert_eq!(
            rejects, store_failures,
            "one reject counter per failed store"
        );
        assert!(s.stored_incompressible_pages <= s.stored_pages);
        // Every entry is on the LRU (no same-filled entries any more).
        assert_eq!(k.zswap.lru_entries() as u64, s.stored_pages);
    }
    // Everything still swapped out reads back bit-exact.
    let left: Vec<_> = model.keys().copied().collect();
    for swp in left {
        let got = k.swap_in(swp).unwrap();
        assert_eq!(&got[..], &model[&swp][..]);
    }
    let s = k.zswap.stats();
    assert_eq!(s.stored_pages, 0);
    assert_eq!(s.pool_total_size, 0);
    assert_eq!(k.zswap.lru_entries(), 0);
    for (i, cg) in cgs.iter().enumerate() {
        if !offline.contains(&i) {
            assert_eq!(cg.zswap_current(), 0, "cgroup c{i} still charged");
        }
    }
    assert_eq!(k.pages_allocated(), 0, "pool or folio pages leaked");
}

fn cases() -> u32 {
    std::env::var("ZSWAP_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn zswap_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
