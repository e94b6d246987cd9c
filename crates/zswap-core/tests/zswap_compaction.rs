//! The pool's compaction shrinker, forwarded by zswap (Linux: zsmalloc's
//! `zs_shrinker_count` / `zs_shrinker_scan`): after half of the stored pages
//! are released the pool holds pages it could give back; the count says how
//! many, a scan gives them back (counted in `pages_compacted`), and every
//! page still stored reads back intact.
#![cfg(not(loom))]

mod common;

use common::*;
use kbase::PAGE_SIZE;
use zswap_core::{ShrinkControl, ShrinkResult};

/// A page that compresses to roughly `PAGE_SIZE / 3` (lz4), varying with
/// `seed` so that objects have different sizes.
fn third(seed: u32) -> Box<[u8; PAGE_SIZE]> {
    let mut p = Box::new([0u8; PAGE_SIZE]);
    let mut x = seed.wrapping_mul(0x9e37_79b9) | 1;
    let noisy = 1100 + (seed as usize * 37) % 500;
    for (i, b) in p.iter_mut().enumerate() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = if i < noisy { x as u8 } else { (i / 128) as u8 };
    }
    p
}

#[test]
fn pool_shrinker_gives_pages_back_after_half_is_released() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("a");
    let n = 600u32;
    let mut slots = Vec::new();
    for i in 0..n {
        let swp = k.swap_out_stored(&third(i), Some(&cg));
        slots.push((swp, i));
    }
    let sc0 = ShrinkControl::new(None, 0);
    let full = k.zswap.total_pages();
    // A freshly filled pool is dense: next to nothing to compact.
    assert!(
        k.zswap.pool_shrinker_count(&sc0) <= 2,
        "dense pool offers pages"
    );
    // Release every other page (process exit of half the memory).
    let mut kept = Vec::new();
    for (j, (swp, i)) in slots.into_iter().enumerate() {
        if j % 2 == 0 {
            k.release(swp);
        } else {
            kept.push((swp, i));
        }
    }
    let halved = k.zswap.total_pages();
    assert!(
        halved * 4 >= full * 3,
        "freeing alone gave pages back: {full} -> {halved}"
    );
    let count = k.zswap.pool_shrinker_count(&sc0);
    assert!(
        count as usize >= halved / 4,
        "count {count} of {halved} pages"
    );
    assert_eq!(k.zswap.stats().pages_compacted, 0);
    // Scan in shrinker-sized batches until the count is used up.
    let mut freed = 0;
    for _ in 0..1000 {
        let mut sc = ShrinkControl::new(None, 32);
        match k.zswap.pool_shrinker_scan(&mut sc) {
            ShrinkResult::Freed(f) => {
                assert_eq!(f, sc.nr_scanned);
                freed += f;
            }
            ShrinkResult::Stop => break,
        }
    }
    let after = k.zswap.total_pages();
    assert_eq!(after, halved - freed);
    assert!(after * 3 <= halved * 2, "{halved} -> {after} pages");
    let st = k.zswap.stats();
    assert_eq!(st.pages_compacted, freed as u64);
    assert_eq!(st.pool_total_size, (after * PAGE_SIZE) as u64);
    // Nothing was written back: compaction only moved objects.
    assert_eq!(st.written_back_pages, 0);
    for (swp, i) in kept {
        assert_eq!(k.swap_in(swp).unwrap(), third(i));
    }
    assert_eq!(k.zswap.total_pages(), 0);
    // compact_pools on an empty pool frees nothing.
    assert_eq!(k.zswap.compact_pools(), 0);
}

#[test]
fn pool_metadata_follows_what_is_stored() {
    let k = Kernel::default_kernel();
    let empty = k.zswap.pool_metadata().unwrap();
    assert_eq!(empty.handles + empty.reverse_maps + empty.descriptors, 0);
    let n = 600u32;
    let slots: Vec<_> = (0..n)
        .map(|i| (k.swap_out_stored(&third(i), None), i))
        .collect();
    let full = k.zswap.pool_metadata().unwrap();
    // Every live object has its handle-table entry and reverse-map slot.
    assert!(
        full.handles + full.reverse_maps >= n as usize * zpool::METADATA_BYTES_PER_OBJECT,
        "{full:?}"
    );
    assert!(full.descriptors > 0 && full.page_vectors > 0, "{full:?}");
    // No more than a small multiple of the layout's minimum after a fill.
    assert!(
        full.total() <= 3 * n as usize * zpool::METADATA_BYTES_PER_OBJECT + 64 * 1024,
        "{full:?}"
    );
    for (swp, i) in slots {
        assert_eq!(k.swap_in(swp).unwrap(), third(i));
    }
    assert_eq!(k.zswap.total_pages(), 0);
    k.zswap.compact_pools();
    let after = k.zswap.pool_metadata().unwrap();
    // The zspages went with their objects, and their metadata with them.
    assert!(
        after.descriptors + after.page_vectors + after.reverse_maps
            < full.descriptors + full.page_vectors + full.reverse_maps,
        "{full:?} -> {after:?}"
    );
}
