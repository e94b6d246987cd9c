//! Random swap-out / swap-in / process-exit / writeback / shrink / cgroup
//! offline sequences against a plain model (`BTreeMap<slot, page bytes>`):
//! every page swapped out reads back bit-exact, from zswap or the device;
//! zswap's counters match what the model saw; no pool page is leaked.
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
    let mut store_attempts = 0u64;

    for op in ops {
        match op {
            Op::SwapOut(kind, c) => {
                if k.swap.inuse_pages(k.swp_type).unwrap() >= 64 {
                    continue;
                }
                let p = page(&kind);
                // A zero page goes to the swap core's zeromap: zswap never
                // sees it (6.12+).
                let zero = p.iter().all(|b| *b == 0);
                if !zero {
                    store_attempts += 1;
                }
                let (swp, r) = k.swap_out(&p, Some(&cgs[c]));
                assert_eq!(zero, k.swap.zeromap_test(swp));
                if r.is_ok() {
                    zswpout += 1;
                    in_zswap.insert(swp);
                }
                assert!(model.insert(swp, p).is_none(), "slot handed out twice");
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
        // Entries that left zswap without a load or a free were written back.
        let gone: Vec<_> = in_zswap
            .iter()
            .filter(|s| !k.zswap.is_present(**s))
            .copied()
            .collect();
        written_back += gone.len() as u64;
        for s in gone {
            in_zswap.remove(&s);
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
        assert_eq!(s.zswpout + rejects, store_attempts);
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn zswap_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
