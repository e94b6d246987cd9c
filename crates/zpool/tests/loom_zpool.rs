//! Loom models of the pool's locking: two threads allocating, writing,
//! reading and freeing in different classes and in the same class,
//! compaction racing a pinned load of an object it would move, a load racing
//! compaction and the free of a neighbour in the same zspage (as a read, and
//! as zswap's load, which frees the object in the hold that unpins it), and
//! a free of the object being loaded, and an allocation with its write
//! (`malloc_write`) racing compaction, and, in a pool of two class shards,
//! compaction racing a load, a free and an allocation in the other shard.
//! The pool's real code runs
//! on loom's primitives through `kbase::sync`.
#![cfg(loom)]

use kbase::{Gfp, HeapPageAllocator, PageAllocator, PageFrame, Result};
use loom::sync::Arc;
use loom::thread;
use zpool::{Handle, ZsConfig, ZsPool};

type Pool = ZsPool<HeapPageAllocator>;

/// Runs `f` under loom (preemption bound 2 unless LOOM_MAX_PREEMPTIONS
/// says otherwise) and checks that more than one interleaving was explored.
fn model(f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let iterations = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = iterations.clone();
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(move || {
        counter.fetch_add(1, Relaxed);
        f()
    });
    let n = iterations.load(Relaxed);
    eprintln!("loom: {n} interleavings");
    assert!(n > 1, "the model explored a single interleaving");
}

fn pool() -> Arc<Pool> {
    // One-page chains: fewer classes, and compaction has whole pages to free.
    let cfg = ZsConfig {
        max_pages_per_zspage: 1,
        ..ZsConfig::default()
    };
    Arc::new(ZsPool::with_config(HeapPageAllocator::new(), cfg).unwrap())
}

/// `n` objects of `size` bytes, object `i` filled with byte `i`.
fn objects(p: &Pool, n: usize, size: usize) -> Vec<Handle> {
    let hs: Vec<_> = (0..n)
        .map(|_| p.malloc(size, Gfp::KERNEL).unwrap())
        .collect();
    for (i, h) in hs.iter().enumerate() {
        p.write(*h, &vec![i as u8; size]).unwrap();
    }
    hs
}

/// Whether every byte of object `h` is `byte`.
fn holds(p: &Pool, h: Handle, byte: u8) -> bool {
    p.read_with(h, |a, b| a.iter().chain(b).all(|&x| x == byte))
        .unwrap()
}

/// Checks that each object `hs[i]` named in `which` still holds byte `i`
/// (as [`objects`] filled it), then frees it.
fn check_and_free(p: &Pool, hs: &[Handle], which: &[usize]) {
    for &i in which {
        assert!(holds(p, hs[i], i as u8), "object {i}");
        p.free(hs[i]).unwrap();
    }
}

fn round_trip(p: &Pool, size: usize, byte: u8) {
    let h = p.malloc(size, Gfp::KERNEL).unwrap();
    p.write(h, &vec![byte; size]).unwrap();
    let ok = p
        .read_with(h, |a, b| {
            a.iter().chain(b).all(|&x| x == byte) && a.len() + b.len() == size
        })
        .unwrap();
    assert!(ok);
    p.free(h).unwrap();
}

#[test]
fn two_threads_different_classes() {
    model(|| {
        let p = pool();
        let q = p.clone();
        let t = thread::spawn(move || round_trip(&q, 100, 1));
        round_trip(&p, 3000, 2);
        t.join().unwrap();
        assert_eq!(p.total_pages(), 0);
        assert_eq!(p.allocator().allocated_pages(), 0);
    });
}

#[test]
fn two_threads_same_class() {
    model(|| {
        let p = pool();
        // One object keeps the zspage alive; both threads then race for the
        // last free slots and for a new zspage.
        let keep = p.malloc(1000, Gfp::KERNEL).unwrap();
        let q = p.clone();
        let t = thread::spawn(move || round_trip(&q, 1000, 1));
        round_trip(&p, 1000, 2);
        t.join().unwrap();
        p.free(keep).unwrap();
        assert_eq!(p.total_pages(), 0);
        assert_eq!(p.allocator().allocated_pages(), 0);
    });
}

#[test]
fn two_threads_race_to_create_the_first_zspage() {
    model(|| {
        // Both may allocate a zspage with the lock dropped; the loser's
        // spare goes back to the page allocator.
        let p = pool();
        let q = p.clone();
        let t = thread::spawn(move || q.malloc(1000, Gfp::KERNEL).unwrap());
        let h1 = p.malloc(1000, Gfp::KERNEL).unwrap();
        let h2 = t.join().unwrap();
        assert_ne!(h1, h2);
        assert_eq!(p.total_pages(), 1);
        assert_eq!(p.allocator().allocated_pages(), 1);
        p.free(h1).unwrap();
        p.free(h2).unwrap();
        assert_eq!(p.allocator().allocated_pages(), 0);
    });
}

#[test]
fn compaction_races_a_read() {
    model(|| {
        let p = pool();
        // 1000-byte class: 4 per page. Zspage A keeps one object, B three:
        // compaction moves A's object into B's hole and frees A.
        let hs = objects(&p, 8, 1000);
        for i in [0, 1, 2, 6] {
            p.free(hs[i]).unwrap();
        }
        assert_eq!(p.total_pages(), 2);
        let q = p.clone();
        let moved = hs[3];
        let t = thread::spawn(move || q.compact());
        assert!(holds(&p, moved, 3));
        // The load pins its zspage: compaction either ran around it (1 page
        // freed) or skipped the pinned zspage (0); a second pass finishes.
        let first = t.join().unwrap();
        assert!(first <= 1);
        assert_eq!(first + p.compact(), 1);
        assert_eq!(p.total_pages(), 1);
        check_and_free(&p, &hs, &[3, 4, 5, 7]);
        assert_eq!(p.allocator().allocated_pages(), 0);
    });
}

#[test]
fn malloc_write_races_compaction_in_its_class() {
    model(|| {
        let p = pool();
        // As `compaction_races_a_read`: A keeps one object, B three and a
        // hole. A malloc_write into the class (the hole, or A's room) races
        // compaction moving A's object: both objects keep their bytes.
        let hs: Vec<_> = (0..8)
            .map(|i| p.malloc_write(&[i as u8; 1000], Gfp::KERNEL).unwrap())
            .collect();
        for i in [0, 1, 2, 6] {
            p.free(hs[i]).unwrap();
        }
        assert_eq!(p.total_pages(), 2);
        let q = p.clone();
        let t = thread::spawn(move || q.compact());
        let new = p.malloc_write(&[9; 1000], Gfp::KERNEL).unwrap();
        t.join().unwrap();
        for (h, byte) in [(new, 9u8), (hs[3], 3), (hs[4], 4), (hs[5], 5), (hs[7], 7)] {
            let ok = p
                .read_with(h, |a, b| {
                    a.len() + b.len() == 1000 && a.iter().chain(b).all(|&x| x == byte)
                })
                .unwrap();
            assert!(ok);
            p.free(h).unwrap();
        }
        assert_eq!(p.total_pages(), 0);
        assert_eq!(p.allocator().allocated_pages(), 0);
    });
}

/// A page allocator that, before each allocation, runs a probe; the probe
/// below takes the class lock of the very class being allocated for.
struct ProbingAllocator {
    inner: HeapPageAllocator,
    probe: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

// SAFETY: pages come from `inner`, which upholds the contract, and go back
// to it.
unsafe impl PageAllocator for ProbingAllocator {
    fn alloc_page(&self, gfp: Gfp) -> Result<PageFrame> {
        if let Some(probe) = self.probe.get() {
            probe();
        }
        self.inner.alloc_page(gfp)
    }

    unsafe fn free_page(&self, page: PageFrame) {
        // SAFETY: the page came from `alloc_page` above, i.e. from `inner`.
        unsafe { self.inner.free_page(page) }
    }
}

#[test]
fn no_class_lock_is_held_across_page_allocation() {
    // If malloc held the class lock while asking for a page, the probe's
    // obj_size() on the same class would deadlock, and loom reports that.
    loom::model(|| {
        let alloc = std::sync::Arc::new(ProbingAllocator {
            inner: HeapPageAllocator::new(),
            probe: std::sync::OnceLock::new(),
        });
        let cfg = ZsConfig {
            max_pages_per_zspage: 2,
            ..ZsConfig::default()
        };
        let p = std::sync::Arc::new(ZsPool::with_config(alloc.clone(), cfg).unwrap());
        let first = p.malloc(3000, Gfp::KERNEL).unwrap();
        let probes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (weak, seen) = (std::sync::Arc::downgrade(&p), probes.clone());
        let _ = alloc.probe.set(Box::new(move || {
            if let Some(p) = weak.upgrade() {
                assert_eq!(p.obj_size(first), Ok(3000));
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
        // 3000-byte objects: the second needs the chain's second page, the
        // third a new zspage.
        let second = p.malloc(3000, Gfp::KERNEL).unwrap();
        let third = p.malloc(3000, Gfp::KERNEL).unwrap();
        assert!(probes.load(std::sync::atomic::Ordering::Relaxed) >= 2);
        for h in [first, second, third] {
            p.free(h).unwrap();
        }
        assert_eq!(alloc.inner.allocated_pages(), 0);
    });
}

#[test]
fn load_races_compaction_and_free_in_one_zspage() {
    model(|| {
        let p = pool();
        // 1000-byte class, 4 per page. Zspage A: objects 0 (read) and 1
        // (freed concurrently); zspage B: 4 and 5. Compaction would move
        // A's objects into B's holes and free A, unless the load pins A.
        let hs = objects(&p, 8, 1000);
        for i in [2, 3, 6, 7] {
            p.free(hs[i]).unwrap();
        }
        assert_eq!(p.total_pages(), 2);
        let (q, r) = (p.clone(), p.clone());
        let (read, freed) = (hs[0], hs[1]);
        let compactor = thread::spawn(move || q.compact());
        let freer = thread::spawn(move || r.free(freed).unwrap());
        let ok = p
            .read_with(read, |a, b| {
                a.len() + b.len() == 1000 && a.iter().chain(b).all(|&x| x == 0)
            })
            .unwrap();
        assert!(ok);
        let compacted = compactor.join().unwrap();
        freer.join().unwrap();
        // Whatever the interleaving: the data is intact, the pages add up,
        // and a second compaction packs the three objects into one page.
        assert!(compacted <= 1);
        p.compact();
        assert_eq!(p.total_pages(), 1);
        check_and_free(&p, &hs, &[0, 4, 5]);
        assert_eq!(p.total_pages(), 0);
        assert_eq!(p.allocator().allocated_pages(), 0);
    });
}

#[test]
fn free_of_an_object_being_loaded_is_refused() {
    model(|| {
        let p = pool();
        let h = p.malloc(500, Gfp::KERNEL).unwrap();
        p.write(h, &[9; 500]).unwrap();
        let q = p.clone();
        // The free runs before the load (which then misses), after it, or
        // during it (EBUSY, the object stays); never under the reader.
        let t = thread::spawn(move || q.free(h));
        let r = p.read_with(h, |a, b| a.iter().chain(b).all(|&x| x == 9));
        let f = t.join().unwrap();
        match (r, f) {
            (Ok(true), Ok(())) => {}
            (Ok(true), Err(kbase::Error::EBUSY)) => p.free(h).unwrap(),
            (Err(kbase::Error::ENOENT), Ok(())) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(p.total_pages(), 0);
        assert_eq!(p.allocator().allocated_pages(), 0);
    });
}

#[test]
fn unpin_races_free_and_reuse_of_the_range() {
    model(|| {
        let p = pool();
        let h = p.malloc(1000, Gfp::KERNEL).unwrap();
        p.write(h, &[7; 1000]).unwrap();
        let keep = p.malloc(1000, Gfp::KERNEL).unwrap();
        let q = p.clone();
        // The freer retries until the load's unpin (under the class lock)
        // lets it through, then reuses the bytes at once: a new object of the
        // same size takes the freed range and is written.
        let t = thread::spawn(move || {
            loop {
                match q.free(h) {
                    Ok(()) => break,
                    Err(kbase::Error::EBUSY) => thread::yield_now(),
                    Err(e) => panic!("free: {e:?}"),
                }
            }
            let n = q.malloc(1000, Gfp::KERNEL).unwrap();
            q.write(n, &[8; 1000]).unwrap();
            n
        });
        // The load sees the object whole or not at all, never the new bytes.
        match p.read_with(h, |a, b| a.iter().chain(b).all(|&x| x == 7)) {
            Ok(ok) => assert!(ok),
            Err(e) => assert_eq!(e, kbase::Error::ENOENT),
        }
        let n = t.join().unwrap();
        assert!(
            p.read_with(n, |a, b| a.iter().chain(b).all(|&x| x == 8))
                .unwrap()
        );
        p.free(n).unwrap();
        p.free(keep).unwrap();
        assert_eq!(p.total_pages(), 0);
        assert_eq!(p.allocator().allocated_pages(), 0);
    });
}

#[test]
fn loads_share_and_wait_for_pins() {
    model(|| {
        // Under loom a class has two pins: three loads at once make one
        // wait for a pin (the third load runs its closure with the lock
        // dropped, so a pinned load can even compact). Compaction meanwhile
        // skips what is pinned.
        let p = pool();
        let hs: Vec<_> = (0..3)
            .map(|i| {
                let h = p.malloc(900, Gfp::KERNEL).unwrap();
                p.write(h, &[i as u8 + 1; 900]).unwrap();
                h
            })
            .collect();
        let ts: Vec<_> = [hs[1], hs[2]]
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                let q = p.clone();
                thread::spawn(move || {
                    q.read_with(h, |a, b| a.iter().chain(b).all(|&x| x == i as u8 + 2))
                        .unwrap()
                })
            })
            .collect();
        let ok = p
            .read_with(hs[0], |a, b| {
                p.compact();
                a.iter().chain(b).all(|&x| x == 1)
            })
            .unwrap();
        assert!(ok);
        for t in ts {
            assert!(t.join().unwrap());
        }
        for h in hs {
            p.free(h).unwrap();
        }
        assert_eq!(p.allocator().allocated_pages(), 0);
    });
}

#[test]
fn read_and_free_races_compaction_and_free_in_one_zspage() {
    model(|| {
        let p = pool();
        // As `load_races_compaction_and_free_in_one_zspage`, with zswap's
        // load: object 0 of zspage A is read and freed in the hold that
        // unpins it while object 1 of A is freed and compaction runs. A
        // empties, whoever frees last gives its page back; B keeps 4 and 5.
        let hs = objects(&p, 8, 1000);
        for i in [2, 3, 6, 7] {
            p.free(hs[i]).unwrap();
        }
        let (q, r) = (p.clone(), p.clone());
        let (read, freed) = (hs[0], hs[1]);
        let compactor = thread::spawn(move || q.compact());
        let freer = thread::spawn(move || r.free(freed).unwrap());
        let got = p
            .read_and_free(read, |a, b| {
                if a.len() + b.len() == 1000 && a.iter().chain(b).all(|&x| x == 0) {
                    Ok(())
                } else {
                    Err(())
                }
            })
            .unwrap();
        assert_eq!(got, Ok(()));
        compactor.join().unwrap();
        freer.join().unwrap();
        assert_eq!(
            p.read_with(read, |_, _| ()).unwrap_err(),
            kbase::Error::ENOENT
        );
        p.compact();
        assert_eq!(p.total_pages(), 1);
        check_and_free(&p, &hs, &[4, 5]);
        assert_eq!(p.total_pages(), 0);
        assert_eq!(p.allocator().allocated_pages(), 0);
    });
}

#[test]
fn read_and_free_races_a_free_of_the_same_object() {
    model(|| {
        let p = pool();
        let h = p.malloc(500, Gfp::KERNEL).unwrap();
        p.write(h, &[5; 500]).unwrap();
        let q = p.clone();
        // Bad input: a free of the object a load consumes. It runs before the
        // load (which then misses), during it (EBUSY: the load frees), or
        // after it (ENOENT); the object is freed exactly once.
        let t = thread::spawn(move || q.free(h));
        let r = p.read_and_free(h, |a, b| {
            if a.iter().chain(b).all(|&x| x == 5) {
                Ok(())
            } else {
                Err(())
            }
        });
        let f = t.join().unwrap();
        match (r, f) {
            (Ok(Ok(())), Err(kbase::Error::EBUSY | kbase::Error::ENOENT)) => {}
            (Err(kbase::Error::ENOENT), Ok(())) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(p.total_pages(), 0);
        assert_eq!(p.allocator().allocated_pages(), 0);
    });
}

#[test]
fn two_shards_compaction_races_load_free_and_malloc_in_the_other_shard() {
    // A pool of two class shards per band. Compaction (of every shard, as
    // `compact` does) runs while CPU 1 loads and frees an object of its
    // shard and allocates one that needs a new page. Shard 0's compaction
    // frees its sparse page whatever CPU 1 does; CPU 1's allocation takes
    // its page with no lock held (the probe takes the lock of the shard
    // being allocated for, and of the shard being compacted); every byte
    // stays where its handle says.
    model(|| {
        let alloc = std::sync::Arc::new(ProbingAllocator {
            inner: HeapPageAllocator::new(),
            probe: std::sync::OnceLock::new(),
        });
        let cfg = ZsConfig {
            max_pages_per_zspage: 1,
            shards: 2,
        };
        let p = std::sync::Arc::new(ZsPool::with_config(alloc.clone(), cfg).unwrap());
        // Shard 0, 1000-byte class, 4 per page: zspage A keeps one object
        // (3), B three (4, 5, 7) and a hole; compaction moves 3 into the
        // hole and frees A.
        let hs: Vec<_> = (0..8)
            .map(|i| p.malloc_write_on(0, &[i as u8; 1000], Gfp::KERNEL).unwrap())
            .collect();
        for i in [0, 1, 2, 6] {
            p.free(hs[i]).unwrap();
        }
        // Shard 1, 2000-byte class, 2 per page: x (loaded and freed) and y.
        let x = p.malloc_write_on(1, &[0x11; 2000], Gfp::KERNEL).unwrap();
        let y = p.malloc_write_on(1, &[0x22; 2000], Gfp::KERNEL).unwrap();
        let (c0, c1) = (p.class_index(1000).unwrap(), p.class_index(2000).unwrap());
        assert_eq!(p.shard_of_handle(hs[3]), Ok((c0, 0)));
        assert_eq!(p.shard_of_handle(x), Ok((c1, 1)));
        assert_eq!(p.total_pages(), 3);
        let probes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (weak, seen, kept) = (std::sync::Arc::downgrade(&p), probes.clone(), hs[4]);
        let _ = alloc.probe.set(Box::new(move || {
            if let Some(p) = weak.upgrade() {
                assert_eq!(p.obj_size(y), Ok(2000));
                assert_eq!(p.obj_size(kept), Ok(1000));
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
        let q = p.clone();
        let compactor = thread::spawn(move || q.compact());
        let got = p.read_and_free(x, |a, b| {
            if a.len() + b.len() == 2000 && a.iter().chain(b).all(|&v| v == 0x11) {
                Ok(())
            } else {
                Err(())
            }
        });
        assert_eq!(got, Ok(Ok(())));
        // 2100 bytes do not fit beside y (whether or not compaction slid y
        // down over x's hole): z needs a page of its own.
        let z = p.malloc_write_on(1, &[0x33; 2100], Gfp::KERNEL).unwrap();
        assert_eq!(p.shard_of_handle(z), Ok((c1, 1)));
        let compacted = compactor.join().unwrap();
        assert!(probes.load(std::sync::atomic::Ordering::Relaxed) >= 1);
        // Shard 0's sparse page, whatever shard 1 did meanwhile; shard 1
        // keeps y's page and z's.
        assert_eq!(compacted, 1);
        assert_eq!(p.compact(), 0);
        assert_eq!(p.total_pages(), 3);
        for (h, byte, len) in [
            (y, 0x22u8, 2000),
            (z, 0x33, 2100),
            (hs[3], 3, 1000),
            (hs[4], 4, 1000),
            (hs[5], 5, 1000),
            (hs[7], 7, 1000),
        ] {
            let ok = p
                .read_with(h, |a, b| {
                    a.len() + b.len() == len && a.iter().chain(b).all(|&v| v == byte)
                })
                .unwrap();
            assert!(ok, "object of byte {byte}");
            p.free(h).unwrap();
        }
        assert_eq!(p.total_pages(), 0);
        assert_eq!(alloc.inner.allocated_pages(), 0);
    });
}
