//! Behaviour of the public API: round trips, spanning objects, errors on bad
//! input, page accounting, compaction, fault injection, threads.
#![cfg(not(loom))]

use std::sync::Arc;

use kbase::{Error, FaultInjector, Gfp, HeapPageAllocator, PAGE_SIZE};
use zpool::{Handle, METADATA_BYTES_PER_OBJECT, ZsConfig, ZsPool};

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Stores an object of `size` bytes holding `pattern(seed, size)`: its
/// handle and its bytes.
fn stored(p: &ZsPool<Arc<HeapPageAllocator>>, seed: u64, size: usize) -> (Handle, Vec<u8>) {
    let h = p.malloc(size, Gfp::KERNEL).unwrap();
    let d = pattern(seed, size);
    p.write(h, &d).unwrap();
    (h, d)
}

fn pool() -> ZsPool<Arc<HeapPageAllocator>> {
    ZsPool::new(Arc::new(HeapPageAllocator::new())).unwrap()
}

/// The bytes of the object behind `h`, its one or two segments joined.
fn bytes(p: &ZsPool<Arc<HeapPageAllocator>>, h: Handle) -> Vec<u8> {
    p.read_with(h, |a, b| [a, b].concat()).unwrap()
}

/// Every read the API offers (a copy, the size, in place) gives `data`.
fn assert_reads_back(p: &ZsPool<Arc<HeapPageAllocator>>, h: Handle, data: &[u8]) {
    let mut buf = vec![0u8; PAGE_SIZE];
    assert_eq!(p.read(h, &mut buf).unwrap(), data.len());
    assert_eq!(&buf[..data.len()], data);
    assert_eq!(p.obj_size(h).unwrap(), data.len());
    assert_eq!(bytes(p, h), data);
}

/// The pool holds no page, and its allocator has none out.
fn assert_no_pages(p: &ZsPool<Arc<HeapPageAllocator>>) {
    assert_eq!(p.total_pages(), 0);
    assert_eq!(p.allocator().allocated_pages(), 0);
}

#[test]
fn every_size_round_trips() {
    let p = pool();
    let step = if cfg!(miri) { 509 } else { 7 };
    let mut live = Vec::new();
    for size in (1..=PAGE_SIZE).step_by(step).chain([PAGE_SIZE]) {
        let h = p.malloc(size, Gfp::KERNEL).unwrap();
        let data = pattern(size as u64, size);
        p.write(h, &data).unwrap();
        live.push((h, data));
    }
    for (h, data) in &live {
        assert_reads_back(&p, *h, data);
    }
    let st = p.stats();
    assert_eq!(st.objects, live.len());
    assert_eq!(
        st.bytes_stored,
        live.iter().map(|(_, d)| d.len()).sum::<usize>()
    );
    for (h, _) in live {
        p.free(h).unwrap();
    }
    assert_no_pages(&p);
    assert_eq!(p.stats().objects, 0);
}

#[test]
fn malloc_write_stores_every_size_in_one_call() {
    let p = pool();
    let step = if cfg!(miri) { 509 } else { 7 };
    let mut live = Vec::new();
    for size in (1..=PAGE_SIZE).step_by(step).chain([PAGE_SIZE]) {
        let data = pattern(size as u64 + 1, size);
        let h = p.malloc_write(&data, Gfp::KERNEL).unwrap();
        live.push((h, data));
    }
    for (h, data) in &live {
        assert_reads_back(&p, *h, data);
    }
    // Objects that span a page boundary were written whole.
    assert!(
        live.iter()
            .any(|(h, _)| p.read_with(*h, |_, b| !b.is_empty()).unwrap())
    );
    assert_eq!(p.stats().objects, live.len());
    for (h, _) in live {
        p.free(h).unwrap();
    }
    assert_no_pages(&p);
}

#[test]
fn malloc_write_refuses_bad_sizes_and_leaves_nothing() {
    let p = pool();
    assert_eq!(p.malloc_write(&[], Gfp::KERNEL), Err(Error::EINVAL));
    assert_eq!(
        p.malloc_write(&vec![1u8; PAGE_SIZE + 1], Gfp::KERNEL),
        Err(Error::ENOSPC)
    );
    assert_eq!(p.stats().objects, 0);
    assert_no_pages(&p);
    // Page allocation failure: ENOMEM, no object, no page kept.
    let a = Arc::new(FaultInjector::new(HeapPageAllocator::new()));
    let q = ZsPool::new(a.clone()).unwrap();
    a.fail_next(1);
    assert_eq!(q.malloc_write(&[7u8; 100], Gfp::KERNEL), Err(Error::ENOMEM));
    assert_eq!(a.injected_failures(), 1);
    assert_eq!(q.stats().objects, 0);
    assert_eq!(q.total_pages(), 0);
    // The next one gets its page and its bytes.
    let h = q.malloc_write(&[7u8; 100], Gfp::KERNEL).unwrap();
    assert!(
        q.read_with(h, |x, y| x.len() + y.len() == 100
            && x.iter().chain(y).all(|&b| b == 7))
            .unwrap()
    );
    q.free(h).unwrap();
    assert_eq!(q.total_pages(), 0);
}

#[test]
fn objects_spanning_a_page_boundary_read_as_two_segments() {
    let p = pool();
    // 1552-byte slots: object 2 covers bytes 3104..4656 of the chain.
    let hs: Vec<Handle> = (0..3)
        .map(|_| p.malloc(1550, Gfp::KERNEL).unwrap())
        .collect();
    let data = pattern(3, 1550);
    p.write(hs[2], &data).unwrap();
    let (a, b) = p.read_with(hs[2], |a, b| (a.len(), b.len())).unwrap();
    assert!(a > 0 && b > 0, "object 2 should span: {a} + {b}");
    assert_eq!(a + b, 1550);
    assert_eq!(p.read_with(hs[2], |a, b| [a, b].concat()).unwrap(), data);
    // Non-spanning object: one segment.
    assert_eq!(p.read_with(hs[0], |_, b| b.len()).unwrap(), 0);
}

#[test]
fn bad_sizes_and_handles_are_errors() {
    let p = pool();
    assert_eq!(p.malloc(0, Gfp::KERNEL), Err(Error::EINVAL));
    assert_eq!(p.malloc(PAGE_SIZE + 1, Gfp::KERNEL), Err(Error::ENOSPC));
    let a = p.malloc(100, Gfp::KERNEL).unwrap();
    let b = p.malloc(100, Gfp::KERNEL).unwrap();
    p.write(b, &[7; 100]).unwrap();
    assert_eq!(p.write(a, &[1; 101]), Err(Error::EINVAL));
    assert_eq!(p.read(a, &mut [0; 99]), Err(Error::EINVAL));
    p.free(a).unwrap();
    // Double free, use after free.
    assert_eq!(p.free(a), Err(Error::ENOENT));
    assert_eq!(p.read(a, &mut [0; 100]), Err(Error::ENOENT));
    assert_eq!(p.write(a, &[0; 10]), Err(Error::ENOENT));
    assert_eq!(p.obj_size(a), Err(Error::ENOENT));
    // The slot is reused; the stale handle still misses.
    let c = p.malloc(100, Gfp::KERNEL).unwrap();
    assert_ne!(c, a);
    assert_eq!(p.free(a), Err(Error::ENOENT));
    // Another pool's handle and garbage.
    let q = pool();
    let foreign = q.malloc(100, Gfp::KERNEL).unwrap();
    assert_eq!(p.free(foreign), Err(Error::EINVAL));
    assert_eq!(p.read(foreign, &mut [0; 100]), Err(Error::EINVAL));
    assert_eq!(p.free(Handle::from_raw(0)), Err(Error::EINVAL));
    let forged = Handle::from_raw(b.to_raw() + 12345);
    assert!(p.free(forged).is_err());
    // Nothing else was disturbed.
    let mut buf = [0u8; 100];
    p.read(b, &mut buf).unwrap();
    assert_eq!(buf, [7; 100]);
    assert_eq!(q.read(foreign, &mut buf), Ok(100));
    assert_eq!(p.stats().objects, 2);
}

#[test]
fn config_is_validated() {
    let a = HeapPageAllocator::new();
    assert!(
        ZsPool::with_config(
            &a,
            ZsConfig {
                max_pages_per_zspage: 0,
                ..ZsConfig::default()
            }
        )
        .is_err()
    );
    assert!(
        ZsPool::with_config(
            &a,
            ZsConfig {
                max_pages_per_zspage: zpool::MAX_PAGES_PER_ZSPAGE + 1,
                ..ZsConfig::default()
            }
        )
        .is_err()
    );
    let p = ZsPool::with_config(
        &a,
        ZsConfig {
            max_pages_per_zspage: 1,
            ..ZsConfig::default()
        },
    )
    .unwrap();
    let h = p.malloc(3000, Gfp::KERNEL).unwrap();
    assert_eq!(p.total_pages(), 1);
    p.free(h).unwrap();
    assert_eq!(a.allocated_pages(), 0);
}

#[test]
fn objects_pack_back_to_back_and_chains_grow_a_page_at_a_time() {
    let p = pool();
    let ci = p.class_index(1500).unwrap();
    let cs = p.class_stats(ci).unwrap();
    assert!(cs.pages_per_zspage > 1);
    let mut hs = Vec::new();
    // Byte-granular packing: n objects of 1500 bytes take exactly the pages
    // their bytes need, in one zspage, until the chain is complete.
    let fit = cs.pages_per_zspage * PAGE_SIZE / 1500;
    for n in 1..=fit.min(20) {
        hs.push(p.malloc(1500, Gfp::KERNEL).unwrap());
        assert_eq!(
            p.total_pages(),
            (n * 1500).div_ceil(PAGE_SIZE),
            "{n} objects"
        );
    }
    let cs = p.class_stats(ci).unwrap();
    assert_eq!(
        (cs.objects, cs.zspages, cs.bytes),
        (hs.len(), 1, hs.len() * 1500)
    );
    assert_eq!(
        p.class_recount(ci),
        Some((hs.len(), hs.len() * 1500, cs.pages, 1))
    );
    for h in hs {
        p.free(h).unwrap();
    }
    assert_no_pages(&p);
}
#[test]
fn freed_bytes_are_reused_exactly() {
    let p = pool();
    let hs: Vec<Handle> = (0..40)
        .map(|_| p.malloc(100, Gfp::KERNEL).unwrap())
        .collect();
    let pages = p.total_pages();
    assert_eq!(pages, 1);
    // A 100-byte hole takes a 60- and a 40-byte object, to the byte.
    p.free(hs[7]).unwrap();
    let a = p.malloc(60, Gfp::KERNEL).unwrap();
    let b = p.malloc(40, Gfp::KERNEL).unwrap();
    p.write(a, &[1; 60]).unwrap();
    p.write(b, &[2; 40]).unwrap();
    // The page's tail (4096 - 4000 bytes) takes 96 more, then a page is
    // attached.
    let c = p.malloc(96, Gfp::KERNEL).unwrap();
    assert_eq!(p.total_pages(), pages);
    let d = p.malloc(1, Gfp::KERNEL).unwrap();
    assert_eq!(p.total_pages(), pages + 1);
    let mut buf = [0u8; PAGE_SIZE];
    assert_eq!(p.read(a, &mut buf), Ok(60));
    assert_eq!(&buf[..60], &[1; 60]);
    assert_eq!(p.read(b, &mut buf), Ok(40));
    assert_eq!(&buf[..40], &[2; 40]);
    for h in hs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 7)
        .map(|(_, h)| *h)
    {
        p.free(h).unwrap();
    }
    for h in [a, b, c, d] {
        p.free(h).unwrap();
    }
    assert_eq!(p.allocator().allocated_pages(), 0);
}
#[test]
fn objects_are_freed_from_any_place_of_a_full_zspage() {
    // One zspage of 256 objects (the cap) with gaps refilled by objects of
    // other sizes; frees from the bottom, the top and the middle, and the
    // freed object is the one that goes: every other still reads back.
    let p = pool();
    let ci = p.class_index(40).unwrap();
    let mut live: Vec<(Handle, Vec<u8>)> = (0..256)
        .map(|i| {
            let size = 24 + (i * 7) % 40;
            stored(&p, i as u64, size)
        })
        .collect();
    let (gone, kept): (Vec<_>, Vec<_>) =
        live.into_iter().enumerate().partition(|(i, _)| i % 9 == 5);
    for (_, (h, _)) in gone {
        p.free(h).unwrap();
    }
    live = kept.into_iter().map(|(_, x)| x).collect();
    for i in 0..live.len() / 9 {
        let size = 20 + i % 5;
        live.push(stored(&p, 1000 + i as u64, size));
    }
    let mut order = Vec::new();
    while !live.is_empty() {
        let at = match order.len() % 3 {
            0 => 0,
            1 => live.len() - 1,
            _ => live.len() / 2,
        };
        order.push(at);
        let (h, _) = live.remove(at);
        p.free(h).unwrap();
        assert_eq!(p.free(h), Err(Error::ENOENT));
        // Under Miri every 32nd round only (250 rounds of 250 reads).
        if !cfg!(miri) || order.len() % 32 == 1 {
            for (h, d) in &live {
                assert_eq!(bytes(&p, *h), *d);
            }
        }
        let (objs, _, _, zspages) = p.class_recount(ci).unwrap();
        assert_eq!(objs, live.len());
        assert_ne!(zspages, usize::MAX);
    }
    assert_eq!(p.total_pages(), 0);
}

#[test]
fn compaction_moves_objects_keeps_handles_and_frees_pages() {
    let p = pool();
    let mut live = Vec::new();
    // Under miri: fewer objects in fewer classes, still several pages each.
    let (count, base, span) = if cfg!(miri) {
        (40, 1000, 64)
    } else {
        (3000, 200, 1800)
    };
    for i in 0..count {
        let size = base + (i * 37) % span;
        live.push(stored(&p, i as u64, size));
    }
    let full = p.total_pages();
    // Free two objects of every three.
    let mut kept = Vec::new();
    for (i, (h, d)) in live.into_iter().enumerate() {
        if i % 3 == 0 {
            kept.push((h, d));
        } else {
            p.free(h).unwrap();
        }
    }
    let before = p.total_pages();
    let freed = p.compact();
    assert!(freed > 0);
    assert_eq!(p.total_pages(), before - freed);
    assert_eq!(p.stats().pages_compacted, freed);
    assert_eq!(p.allocator().allocated_pages(), p.total_pages());
    // Each class ends close to the pages its bytes need: at most one page
    // more per zspage (its last page partly used, and gaps no remaining
    // object fitted).
    let mut bound = 0;
    for c in (0..p.nr_classes()).map(|i| p.class_stats(i).unwrap()) {
        bound += c.bytes.div_ceil(PAGE_SIZE) + c.zspages;
    }
    assert!(
        p.total_pages() <= bound,
        "{} pages, bound {bound} (was {full} full)",
        p.total_pages()
    );
    for (h, d) in &kept {
        assert_eq!(&bytes(&p, *h), d);
    }
    // Compaction converges: repeated passes soon find nothing more.
    let mut rounds = 0;
    while p.compact() != 0 {
        rounds += 1;
        assert!(rounds < 8, "compaction does not converge");
    }
    assert_eq!(p.shrinker_scan(usize::MAX), 0);
    for (h, _) in kept {
        p.free(h).unwrap();
    }
    assert_eq!(p.allocator().allocated_pages(), 0);
}

#[test]
fn metadata_per_object_is_what_the_layout_needs() {
    const { assert!(METADATA_BYTES_PER_OBJECT <= 16) };
    // Measured: fill one class to exactly the handle table's capacity; the
    // heap metadata is then the per-object 16 bytes plus the zspage
    // descriptors and page vectors, amortised over each zspage's objects.
    let p = pool();
    // Whole handle-table chunks (256 entries) under miri, where the pool is
    // small enough for one partly used chunk to show.
    let n = if cfg!(miri) { 3 * 256 } else { 16_384 };
    let base = p.stats().metadata_bytes;
    let hs: Vec<Handle> = (0..n)
        .map(|_| p.malloc(100, Gfp::KERNEL).unwrap())
        .collect();
    let st = p.stats();
    // The last zspage is partly filled: its reverse map has room for a full
    // chain of such objects (up to 3 bytes/object of slack here).
    let per_obj = (st.metadata_bytes - base) as f64 / n as f64;
    println!("{per_obj:.2} bytes/object: {:?}", st.metadata);
    assert_eq!(st.metadata_bytes, st.metadata.total());
    assert!(
        per_obj <= (METADATA_BYTES_PER_OBJECT + 3) as f64,
        "{per_obj} bytes/object"
    );
    // Freeing every other object and compacting gives back reverse maps
    // and descriptors along with the zspages.
    for h in hs.iter().step_by(2) {
        p.free(*h).unwrap();
    }
    p.compact();
    let after = p.stats();
    assert!(after.metadata.reverse_maps < st.metadata.reverse_maps);
    for h in hs.iter().skip(1).step_by(2) {
        p.free(*h).unwrap();
    }
    let empty = p.stats().metadata;
    assert_eq!(empty.reverse_maps, 0);
    // The handle table shrank with its objects: at most one chunk left (the
    // class's last chunk with room stays), plus its directory (24 bytes per
    // 256 objects at the peak, which stays).
    assert!(empty.handles <= 4096 + 2048, "{empty:?}");
}
#[test]
fn fault_injection_loses_nothing_and_leaks_nothing() {
    let ks: &[usize] = if cfg!(miri) { &[3] } else { &[2, 3, 5, 7] };
    for &k in ks {
        let a = Arc::new(FaultInjector::new(HeapPageAllocator::new()));
        let p = ZsPool::new(a.clone()).unwrap();
        a.fail_every(k);
        let mut live = Vec::new();
        let mut failures = 0;
        let n = if cfg!(miri) { 24 } else { 1500 };
        for i in 0..n {
            let size = 1 + (i * 131) % PAGE_SIZE;
            match p.malloc(size, Gfp::ZSWAP_POOL) {
                Ok(h) => {
                    let d = pattern(i as u64, size);
                    p.write(h, &d).unwrap();
                    live.push((h, d));
                }
                Err(e) => {
                    assert_eq!(e, Error::ENOMEM);
                    failures += 1;
                }
            }
            if i % 4 == 3 {
                let (h, _) = live.swap_remove(live.len() / 2);
                p.free(h).unwrap();
            }
        }
        assert!(failures > 0);
        assert_eq!(p.stats().objects, live.len());
        assert_eq!(a.inner().allocated_pages(), p.total_pages());
        // Compaction (the shrinker's and a full pass) allocates no page, so
        // it works on a pool whose allocator fails.
        let before = p.total_pages();
        let freed = p.shrinker_scan(usize::MAX) + p.compact();
        assert_eq!(p.total_pages(), before - freed);
        assert_eq!(a.inner().allocated_pages(), p.total_pages());
        for (h, d) in &live {
            assert_eq!(&p.read_with(*h, |x, y| [x, y].concat()).unwrap(), d);
        }
        for (h, _) in live {
            p.free(h).unwrap();
        }
        assert_eq!(p.total_pages(), 0);
        assert_eq!(a.inner().allocated_pages(), 0, "k={k}");
    }
}

#[test]
fn dropping_the_pool_returns_every_page() {
    let a = HeapPageAllocator::new();
    {
        let p = ZsPool::new(&a).unwrap();
        for i in 0..100 {
            p.malloc(1 + i * 40, Gfp::KERNEL).unwrap();
        }
        assert!(a.allocated_pages() > 0);
    }
    assert_eq!(a.allocated_pages(), 0);
}

#[test]
fn allocator_limit_gives_enomem_then_recovers() {
    let a = HeapPageAllocator::with_limit(4);
    let p = ZsPool::new(&a).unwrap();
    let mut hs = Vec::new();
    let err = loop {
        match p.malloc(4000, Gfp::KERNEL) {
            Ok(h) => hs.push(h),
            Err(e) => break e,
        }
    };
    assert_eq!(err, Error::ENOMEM);
    assert_eq!(hs.len(), 4);
    p.free(hs.pop().unwrap()).unwrap();
    hs.push(p.malloc(4000, Gfp::KERNEL).unwrap());
    for h in hs {
        p.free(h).unwrap();
    }
    assert_eq!(a.allocated_pages(), 0);
}

#[test]
fn threads_in_same_and_different_classes() {
    let _watchdog = kbase::testing::watchdog(
        "threads_in_same_and_different_classes",
        std::time::Duration::from_secs(120),
    );
    let p = Arc::new(pool());
    let threads = 4;
    let iters = if cfg!(miri) { 8 } else { 3000 };
    let ths: Vec<_> = (0..threads)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut live: Vec<(Handle, Vec<u8>)> = Vec::new();
                for i in 0..iters {
                    // Threads 0 and 1 share classes; 2 and 3 use their own.
                    let size = match t {
                        0 | 1 => 100 + (i % 3) * 16,
                        _ => 1000 + t * 500 + i % 50,
                    };
                    live.push(stored(&p, (t * 1_000_000 + i) as u64, size));
                    if i % 3 == 2 {
                        let (h, d) = live.swap_remove(i % live.len());
                        assert_eq!(p.read_with(h, |a, b| [a, b].concat()).unwrap(), d);
                        p.free(h).unwrap();
                    }
                    if t == 0 && i % 500 == 0 {
                        p.compact();
                    }
                }
                for (h, d) in live {
                    assert_eq!(p.read_with(h, |a, b| [a, b].concat()).unwrap(), d);
                    p.free(h).unwrap();
                }
            })
        })
        .collect();
    for t in ths {
        t.join().unwrap();
    }
    assert_no_pages(&p);
}

#[test]
fn a_load_runs_with_no_pool_lock_and_pins_only_its_object() {
    let p = pool();
    // Several objects of one class sharing zspages, some spanning pages.
    let hs: Vec<(Handle, Vec<u8>)> = (0..12).map(|i| stored(&p, 100 + i, 1550)).collect();
    let (target, want) = &hs[2];
    let pages_before = p.total_pages();
    let seen = p
        .read_with(*target, |a, b| {
            // The pinned object cannot be freed or written...
            assert_eq!(p.free(*target), Err(Error::EBUSY));
            assert_eq!(p.write(*target, &[0; 8]), Err(Error::EBUSY));
            // ...while its neighbours, in the same zspage and pages, can.
            p.write(hs[1].0, &pattern(7, 1550)).unwrap();
            p.write(hs[3].0, &pattern(8, 1550)).unwrap();
            for (h, _) in &hs[4..] {
                p.free(*h).unwrap();
            }
            p.free(hs[0].0).unwrap();
            let extra = p.malloc(1550, Gfp::KERNEL).unwrap();
            p.write(extra, &pattern(9, 1550)).unwrap();
            // Compaction skips the pinned zspage; the slices stay valid.
            p.compact();
            let _ = p.stats();
            assert_eq!(p.obj_size(*target), Ok(1550));
            // A second load of the same object nests; a consuming one reads
            // but cannot free what the outer load has pinned (EBUSY, kept).
            let inner = p.read_with(*target, |x, y| [x, y].concat()).unwrap();
            assert_eq!(&inner, want);
            let consumed = p.read_and_free(*target, |x, y| Ok::<_, ()>([x, y].concat()));
            assert_eq!(consumed, Err(Error::EBUSY));
            assert_eq!(p.obj_size(*target), Ok(1550));
            p.free(extra).unwrap();
            [a, b].concat()
        })
        .unwrap();
    assert_eq!(&seen, want);
    // Unpinned: free and compaction work again.
    let before = p.total_pages();
    assert!(before <= pages_before);
    assert_eq!(p.read(hs[1].0, &mut [0; PAGE_SIZE]), Ok(1550));
    p.compact();
    for (h, _) in &hs[1..4] {
        p.free(*h).unwrap();
    }
    assert_no_pages(&p);
}

#[test]
fn loads_race_free_and_compaction_in_one_class() {
    let _watchdog = kbase::testing::watchdog(
        "loads_race_free_and_compaction_in_one_class",
        std::time::Duration::from_secs(120),
    );
    let p = Arc::new(pool());
    let n = if cfg!(miri) { 12 } else { 400 };
    let rounds = if cfg!(miri) { 2 } else { 30 };
    for round in 0..rounds {
        let objs: Vec<(Handle, Vec<u8>)> = (0..n)
            .map(|i| stored(&p, (round * n + i) as u64, 700))
            .collect();
        let objs = Arc::new(objs);
        let readers: Vec<_> = (0..2)
            .map(|t| {
                let (p, objs) = (p.clone(), objs.clone());
                std::thread::spawn(move || {
                    // Odd objects stay: read them again and again.
                    for (h, d) in objs.iter().skip(1 + 2 * t).step_by(4) {
                        let got = bytes(&p, *h);
                        assert_eq!(&got, d);
                    }
                })
            })
            .collect();
        // Meanwhile: free the even objects and compact.
        for (h, _) in objs.iter().step_by(2) {
            p.free(*h).unwrap();
        }
        p.compact();
        for r in readers {
            r.join().unwrap();
        }
        for (h, d) in objs.iter().skip(1).step_by(2) {
            assert_eq!(&bytes(&p, *h), d);
            p.free(*h).unwrap();
        }
        assert_eq!(p.total_pages(), 0);
    }
    assert_eq!(p.allocator().allocated_pages(), 0);
}

/// Compaction of a class whose only partly used zspage has nowhere to move
/// its objects (every other zspage of the class is full): each object is a
/// miss, the attempt ends, nothing is freed or lost.
#[test]
fn compaction_with_no_room_elsewhere_moves_nothing() {
    let p = pool();
    let size = 1000;
    let class = p.class_index(size).unwrap();
    // Two full zspages (a new one is made only when none has room), then a
    // third holding a couple of objects.
    let mut objs = Vec::new();
    let mut extra = 0;
    for i in 0u64.. {
        let zspages = p.class_stats(class).unwrap().zspages;
        if zspages == 3 {
            extra += 1;
            if extra > 2 {
                break;
            }
        }
        objs.push(stored(&p, i, size));
    }
    let before = p.class_stats(class).unwrap();
    assert_eq!(before.zspages, 3);
    assert_eq!(p.compact(), 0);
    let after = p.class_stats(class).unwrap();
    assert_eq!(
        (after.zspages, after.pages, after.objects),
        (3, before.pages, before.objects)
    );
    for (h, d) in &objs {
        assert_eq!(&bytes(&p, *h), d);
    }
}

#[test]
fn a_consuming_read_frees_its_object_in_the_unpinning_hold() {
    let p = pool();
    let hs: Vec<(Handle, Vec<u8>)> = (0..6).map(|i| stored(&p, 40 + i, 1300)).collect();
    // A reader that fails keeps the object, unpinned.
    let (h0, d0) = &hs[0];
    let r = p.read_and_free(*h0, |a, b| Err::<(), _>([a, b].concat()));
    assert_eq!(r.unwrap().unwrap_err(), *d0);
    assert_eq!(p.read(*h0, &mut [0; PAGE_SIZE]), Ok(1300));
    // One that succeeds saw the bytes, and the object is gone: its handle
    // is stale, and the last one gives the pages back.
    for (h, d) in &hs {
        let got = p.read_and_free(*h, |a, b| Ok::<_, ()>([a, b].concat()));
        assert_eq!(got.unwrap().unwrap(), *d);
        assert_eq!(p.free(*h), Err(Error::ENOENT));
        assert_eq!(
            p.read_and_free(*h, |_, _| Ok::<_, ()>(())),
            Err(Error::ENOENT)
        );
    }
    assert_eq!(p.stats().objects, 0);
    assert_no_pages(&p);
}

fn sharded(shards: usize) -> ZsPool<Arc<HeapPageAllocator>> {
    let cfg = ZsConfig {
        shards,
        ..ZsConfig::default()
    };
    ZsPool::with_config(Arc::new(HeapPageAllocator::new()), cfg).unwrap()
}

#[test]
fn shard_count_is_validated_and_classes_stay_bands() {
    let a = HeapPageAllocator::new();
    for bad in [0, zpool::MAX_SHARDS + 1] {
        let cfg = ZsConfig {
            shards: bad,
            ..ZsConfig::default()
        };
        assert!(ZsPool::with_config(&a, cfg).is_err(), "{bad} shards");
    }
    let one = pool();
    let p = sharded(zpool::MAX_SHARDS);
    assert_eq!(p.nr_shards(), zpool::MAX_SHARDS);
    assert_eq!(one.nr_shards(), 1);
    // Classes are still the size bands; each has its shards.
    assert_eq!(p.nr_classes(), one.nr_classes());
    for i in 0..p.nr_classes() {
        let (c, d) = (p.class_stats(i).unwrap(), one.class_stats(i).unwrap());
        assert_eq!((c.min_size, c.size), (d.min_size, d.size));
    }
    // The last shard of the last band has a handle like any other.
    let last = p.nr_classes() - 1;
    let h = p
        .malloc_write_on(zpool::MAX_SHARDS - 1, &[3; PAGE_SIZE], Gfp::KERNEL)
        .unwrap();
    assert_eq!(p.shard_of_handle(h), Ok((last, zpool::MAX_SHARDS - 1)));
    assert_reads_back(&p, h, &[3; PAGE_SIZE]);
    p.free(h).unwrap();
    // An empty pool holds no page, whatever its shard count; its class
    // array is accounted per shard.
    assert_no_pages(&p);
    assert_eq!(p.stats().pages, 0);
    assert_eq!(
        p.stats().metadata.classes,
        zpool::MAX_SHARDS * one.stats().metadata.classes
    );
}

#[test]
fn objects_go_to_their_cpus_shard_and_read_back_from_any() {
    let p = sharded(4);
    let sizes = [40, 700, 1300, 2000, 3000, PAGE_SIZE];
    let mut live = Vec::new();
    for cpu in 0..10 {
        for (j, &size) in sizes.iter().enumerate() {
            let d = pattern((cpu * 10 + j) as u64, size);
            let h = if j % 2 == 0 {
                p.malloc_write_on(cpu, &d, Gfp::KERNEL).unwrap()
            } else {
                let h = p.malloc_on(cpu, size, Gfp::KERNEL).unwrap();
                p.write(h, &d).unwrap();
                h
            };
            let band = p.class_index(size).unwrap();
            assert_eq!(p.shard_of_handle(h), Ok((band, cpu % 4)));
            live.push((h, d, cpu % 4));
        }
    }
    // The entry points without a CPU use shard 0.
    let d0 = pattern(99, 500);
    let h0 = p.malloc_write(&d0, Gfp::KERNEL).unwrap();
    assert_eq!(p.shard_of_handle(h0).unwrap().1, 0);
    live.push((h0, d0, 0));
    // Every shard holds exactly the objects of its CPUs, in pages of its
    // own; a class's counters are its shards' sums.
    for i in 0..p.nr_classes() {
        let c = p.class_stats(i).unwrap();
        let mut objects = 0;
        for s in 0..4 {
            let sc = p.shard_stats(i, s).unwrap();
            let expect = live
                .iter()
                .filter(|(h, _, sh)| *sh == s && p.shard_of_handle(*h).unwrap().0 == i)
                .count();
            assert_eq!(sc.objects, expect, "class {i} shard {s}");
            let (o, b, pg, z) = p.shard_recount(i, s).unwrap();
            assert_eq!((o, b, pg, z), (sc.objects, sc.bytes, sc.pages, sc.zspages));
            objects += sc.objects;
        }
        assert_eq!(c.objects, objects);
    }
    assert_eq!(p.stats().objects, live.len());
    // Read, written over, sized and freed through the handle alone.
    for (h, d, _) in &mut live {
        assert_reads_back(&p, *h, d);
        d[0] ^= 0xff;
        p.write(*h, &d[..1]).unwrap();
        assert_reads_back(&p, *h, d);
    }
    for (n, (h, d, _)) in live.into_iter().enumerate() {
        if n % 2 == 0 {
            p.free(h).unwrap();
        } else {
            let got = p.read_and_free(h, |a, b| Ok::<_, ()>([a, b].concat()));
            assert_eq!(got.unwrap().unwrap(), d);
        }
        assert_eq!(p.free(h), Err(Error::ENOENT));
    }
    assert_no_pages(&p);
    assert_eq!(p.stats().objects, 0);
}

#[test]
fn shards_keep_their_own_zspages() {
    // Two CPUs storing one small object each: one shard each, so two pages
    // where one pool-wide class would use one (the memory a shard costs).
    let p = sharded(2);
    let a = p.malloc_write_on(0, &[1; 100], Gfp::KERNEL).unwrap();
    let b = p.malloc_write_on(1, &[2; 100], Gfp::KERNEL).unwrap();
    assert_eq!(p.total_pages(), 2);
    let c = p.malloc_write_on(3, &[3; 100], Gfp::KERNEL).unwrap();
    assert_eq!(p.total_pages(), 2, "CPU 3 shares CPU 1's shard and page");
    let one = pool();
    let x = one.malloc_write_on(0, &[1; 100], Gfp::KERNEL).unwrap();
    let y = one.malloc_write_on(1, &[2; 100], Gfp::KERNEL).unwrap();
    assert_eq!(one.total_pages(), 1);
    for h in [a, b, c] {
        p.free(h).unwrap();
    }
    for h in [x, y] {
        one.free(h).unwrap();
    }
    assert_no_pages(&p);
    assert_no_pages(&one);
}

#[test]
fn compaction_and_the_shrinker_cover_every_shard() {
    let (count, size) = if cfg!(miri) { (48, 1000) } else { (1200, 1000) };
    for scan in [false, true] {
        let p = sharded(3);
        let mut kept = Vec::new();
        for i in 0..count {
            let (cpu, d) = (i % 3, pattern(i as u64, size));
            let h = p.malloc_write_on(cpu, &d, Gfp::KERNEL).unwrap();
            if i % 6 < 3 {
                kept.push((h, d));
            } else {
                p.free(h).unwrap();
            }
        }
        let ci = p.class_index(size).unwrap();
        let count_before = p.shrinker_count();
        let shard_freeable: Vec<_> = (0..3)
            .map(|s| p.shard_stats(ci, s).unwrap().freeable)
            .collect();
        assert!(shard_freeable.iter().all(|&f| f > 0), "{shard_freeable:?}");
        assert_eq!(count_before, shard_freeable.iter().sum::<usize>());
        let before = p.total_pages();
        let freed = if scan {
            // Round robin over every shard until nothing is left.
            let mut freed = 0;
            loop {
                let got = p.shrinker_scan(1);
                if got == 0 && p.shrinker_count() == 0 {
                    break;
                }
                freed += got;
            }
            freed
        } else {
            p.compact()
        };
        assert!(freed >= count_before, "{freed} < {count_before}");
        assert_eq!(p.total_pages(), before - freed);
        assert_eq!(p.stats().pages_compacted, freed);
        assert_eq!(p.allocator().allocated_pages(), p.total_pages());
        for s in 0..3 {
            let sc = p.shard_stats(ci, s).unwrap();
            assert_eq!(sc.freeable, 0, "shard {s} packed");
            assert_eq!(sc.objects, kept.len() / 3, "objects stayed in shard {s}");
        }
        for (h, d) in &kept {
            assert_reads_back(&p, *h, d);
        }
        for (h, _) in kept {
            p.free(h).unwrap();
        }
        assert_no_pages(&p);
    }
}

#[test]
fn dropping_a_sharded_pool_returns_every_page() {
    let a = Arc::new(HeapPageAllocator::new());
    let cfg = ZsConfig {
        shards: 5,
        ..ZsConfig::default()
    };
    let p = ZsPool::with_config(a.clone(), cfg).unwrap();
    for cpu in 0..12 {
        p.malloc_write_on(cpu, &pattern(cpu as u64, 900 + cpu * 200), Gfp::KERNEL)
            .unwrap();
    }
    assert!(a.allocated_pages() >= 5);
    drop(p);
    assert_eq!(a.allocated_pages(), 0);
}

#[test]
fn a_sharded_malloc_that_cannot_get_a_page_leaves_nothing() {
    let a = Arc::new(FaultInjector::new(HeapPageAllocator::new()));
    let cfg = ZsConfig {
        shards: 2,
        ..ZsConfig::default()
    };
    let p = ZsPool::with_config(a.clone(), cfg).unwrap();
    let h0 = p.malloc_write_on(0, &[1; 100], Gfp::KERNEL).unwrap();
    // Shard 1 has no page yet: its first object needs one.
    a.fail_next(1);
    assert_eq!(
        p.malloc_write_on(1, &[2; 100], Gfp::KERNEL),
        Err(Error::ENOMEM)
    );
    assert_eq!(p.malloc_on(1, 100, Gfp::KERNEL).map(|_| ()), Ok(()));
    assert_eq!(p.shard_stats(0, 1).unwrap().objects, 1);
    assert_eq!(p.stats().objects, 2);
    assert_eq!(p.total_pages(), 2);
    assert_eq!(a.injected_failures(), 1);
    p.free(h0).unwrap();
    drop(p);
    assert_eq!(a.inner().allocated_pages(), 0);
}

#[test]
fn threads_store_in_their_shards_and_load_each_others_objects() {
    let _watchdog = kbase::testing::watchdog(
        "threads_store_in_their_shards_and_load_each_others_objects",
        std::time::Duration::from_secs(120),
    );
    let p = Arc::new(sharded(2));
    let iters = if cfg!(miri) { 8 } else { 3000 };
    // Each thread stores on its CPU; what it stores goes to the other
    // thread, which loads and frees it (the other shard's lock), while the
    // shrinker runs on thread 0.
    let (tx0, rx1) = std::sync::mpsc::channel::<(Handle, Vec<u8>)>();
    let (tx1, rx0) = std::sync::mpsc::channel::<(Handle, Vec<u8>)>();
    let ths: Vec<_> = [(0usize, tx0, rx0), (1, tx1, rx1)]
        .into_iter()
        .map(|(cpu, tx, rx)| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..iters {
                    let d = pattern((cpu * 1_000_000 + i) as u64, 200 + (i * 37) % 3000);
                    let h = p.malloc_write_on(cpu, &d, Gfp::KERNEL).unwrap();
                    assert_eq!(p.shard_of_handle(h).unwrap().1, cpu);
                    tx.send((h, d)).unwrap();
                    while let Ok((h, d)) = rx.try_recv() {
                        let got = p.read_and_free(h, |a, b| Ok::<_, ()>([a, b].concat()));
                        assert_eq!(got.unwrap().unwrap(), d);
                    }
                    if cpu == 0 && i % 300 == 0 {
                        p.shrinker_scan(8);
                    }
                }
                drop(tx);
                for (h, d) in rx {
                    assert_eq!(bytes(&p, h), d);
                    p.free(h).unwrap();
                }
            })
        })
        .collect();
    for t in ths {
        t.join().unwrap();
    }
    assert_no_pages(&p);
}
