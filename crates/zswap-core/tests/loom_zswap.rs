//! Loom models of zswap's races, driving the real crates (zswap-core,
//! swapcache, memcg, zpool) through the sync shim. Tiny configurations:
//! an 8-slot swap device (two swap clusters where a model needs two),
//! 64 pages of RAM, one CPU (two in the models named "on two CPUs" and
//! "in two swap clusters", and in the LRU sub-list model).
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo nextest run --release -p zswap-core --test loom_zswap`.
#![cfg(loom)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use kbase::{Error, PAGE_SIZE};
use loom::thread;
use zswap_core::{ShrinkControl, ShrinkResult, ZswapParams};

static ITERS: AtomicUsize = AtomicUsize::new(0);
static COMPACTED: AtomicUsize = AtomicUsize::new(0);

/// Spawns a model thread with a stack large enough for the real code paths.
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    thread::Builder::new().stack_size(4 << 20).spawn(f).unwrap()
}

/// The models' machine: 64 pages of RAM, an 8-slot swap device, one CPU,
/// memory cgroups, the shrinker on.
fn tiny_config() -> Config {
    Config {
        totalram: 64,
        swap_pages: 8,
        ..Config::default()
    }
}

fn tiny() -> Arc<Kernel> {
    Kernel::new(tiny_config())
}

/// Runs a bounded model and reports its size.
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    ITERS.store(0, Ordering::Relaxed);
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.max_branches = 50_000;
    let t0 = std::time::Instant::now();
    let f = Arc::new(f);
    b.check(move || {
        ITERS.fetch_add(1, Ordering::Relaxed);
        // The model's own thread has a small stack: run on a big one.
        let f = f.clone();
        spawn(move || f()).join().unwrap();
    });
    eprintln!(
        "loom {name}: {} iterations in {:?} (preemption bound {:?})",
        ITERS.load(Ordering::Relaxed),
        t0.elapsed(),
        b.preemption_bound
    );
}

/// Clears the second-chance bit of every entry (one rotation each), so the
/// next walk goes straight to writeback.
fn rotate_all(k: &Kernel, cg: &memcg::MemcgRef) {
    let mut sc = ShrinkControl::new(Some(cg.clone()), k.zswap.lru_count(Some(cg)));
    let _ = k.zswap.shrinker_scan(&mut sc);
}

/// The fault-plus-reclaim recursion: a fault on X charges its folio and the
/// charge reclaims into zswap, which picks X. With `skip_if_exists` the
/// inner writeback gets EEXIST and the fault completes; a concurrent
/// process exit of another slot runs alongside.
fn recursion(wait_on_exists: bool) {
    let k = tiny();
    if wait_on_exists {
        // The model fails by design: nothing of the kernel may drop while
        // loom unwinds.
        std::mem::forget(k.clone());
    }
    let cg = k.cgroup("a");
    let page = compressible(1);
    let x = k.swap_out_stored(&page, Some(&cg));
    let y = k.swap_out_stored(&compressible(2), Some(&cg));
    rotate_all(&k, &cg);
    k.zswap
        .test_only_writeback_waits_on_busy_slots(wait_on_exists);
    // Wait forever, as a kernel would: the model must catch it.
    k.sp().wait_limit.store(0, Ordering::Relaxed);
    k.sp().reclaim_on_charge.store(1, Ordering::Relaxed);
    let k2 = k.clone();
    let t = spawn(move || k2.release(y));
    let back = k.swap_in(x);
    t.join().unwrap();
    let back = match back {
        Ok(b) => b,
        Err(e) => panic!(
            "{e:?} stats {:?} results {:?}",
            k.zswap.stats(),
            k.sp().reclaim_results.lock().unwrap()
        ),
    };
    assert_eq!(&back[..], &page[..]);
    assert_eq!(k.zswap.stats().stored_pages, 0);
    assert!(k.swap.lookup(x).is_none());
}

#[test]
fn loom_recursion_completes_with_skip_if_exists() {
    model("recursion (skip)", || recursion(false));
}

#[test]
// loom's exact message for a thread that spins without progress (a
// recursive wait), not just any panic.
#[should_panic(
    expected = "Model exceeded maximum number of branches. This is often caused by an \
                algorithm requiring the processor to make progress, e.g. spin locks."
)]
fn loom_recursion_without_skip_never_completes() {
    model("recursion (wait)", || recursion(true));
}

/// Writeback of X races the slot being freed and reused by a new store:
/// the new data must win, and no folio may stay in the swap cache.
#[test]
fn loom_writeback_vs_invalidate_and_reuse() {
    model("writeback vs invalidate+reuse", || {
        let k = tiny();
        let cg = k.cgroup("a");
        let x = k.swap_out_stored(&compressible(1), Some(&cg));
        // Take every other slot, so a new swap-out reuses X.
        let mut others = Vec::new();
        while let Ok(s) = k.swap.get_swap_pages(1, kbase::Gfp::KERNEL) {
            others.push(s);
        }
        rotate_all(&k, &cg);
        let new = compressible(9);
        let k2 = k.clone();
        let cg2 = cg.clone();
        let new2 = new.clone();
        let t = spawn(move || {
            k2.release(x);
            // The slot stays allocated while writeback holds it in the swap
            // cache: retry a bounded number of times.
            for _ in 0..3 {
                let f = k2.page_folio(&new2);
                f.set_memcg_id(cg2.id());
                f.lock();
                match k2.swap.add_to_swap(&f, kbase::Gfp::KERNEL) {
                    Ok(y) => {
                        k2.swap.swap_cgroup_record(y, 1, cg2.id()).unwrap();
                        k2.zswap.store(&f).unwrap();
                        k2.swap.delete_from_swap_cache(&f);
                        f.unlock();
                        return Some(y);
                    }
                    Err(e) => {
                        assert_eq!(e, Error::ENOSPC);
                        f.unlock();
                        thread::yield_now();
                    }
                }
            }
            None
        });
        let _ = k.zswap.shrink_memcg(&cg);
        let y = t.join().unwrap();
        assert!(k.swap.lookup(x).is_none());
        match y {
            Some(y) => {
                assert_eq!(y, x);
                let dbg = format!(
                    "count {:?} cache {:?} present {} stats {:?}",
                    k.swap.swap_count(x),
                    k.swap.has_cache(x),
                    k.zswap.is_present(x),
                    k.zswap.stats()
                );
                let got = k.swap_in(x);
                assert!(got.is_ok(), "{got:?} {dbg}");
                assert_eq!(&got.unwrap()[..], &new[..]);
            }
            // Not reused: the old entry is gone with its slot.
            None => assert!(!k.zswap.is_present(x)),
        }
        for s in others {
            k.release(s);
        }
        assert_eq!(k.zswap.stats().stored_pages, 0);
        assert_eq!(cg.zswap_current(), 0);
    });
}

/// A fault loads X while another process holding X exits: exactly one
/// free, and the data comes back.
#[test]
fn loom_load_vs_invalidate() {
    model("load vs invalidate", || {
        let k = tiny();
        let cg = k.cgroup("a");
        let page = compressible(3);
        let x = k.swap_out_stored(&page, Some(&cg));
        k.swap.swap_duplicate(x).unwrap(); // shared by two processes
        let k2 = k.clone();
        let t = spawn(move || k2.release(x));
        let back = k.swap_in(x).unwrap();
        t.join().unwrap();
        assert_eq!(&back[..], &page[..]);
        let s = k.zswap.stats();
        assert_eq!(s.stored_pages, 0);
        assert_eq!(s.zswpin, 1);
        assert_eq!(cg.zswap_current(), 0);
        assert_eq!(s.pool_total_size, 0);
    });
}

/// Writeback of X races a fault on X that redirties the page and stores it
/// again: whatever the order, the newest data is what X reads back.
#[test]
fn loom_store_vs_writeback_same_slot() {
    model("store vs writeback", || {
        let k = tiny();
        let cg = k.cgroup("a");
        let v1 = compressible(5);
        let x = k.swap_out_stored(&v1, Some(&cg));
        k.swap.swap_duplicate(x).unwrap(); // the folio stays cached after the fault
        rotate_all(&k, &cg);
        // A bounded wait: the fault gives up (EDEADLK) if writeback holds X.
        k.sp().wait_limit.store(2, Ordering::Relaxed);
        let v2 = compressible(6);
        let k2 = k.clone();
        let v2b = v2.clone();
        let t = spawn(move || {
            let (f, new) = match k2.swap.read_swap_cache_async(x, kbase::Gfp::KERNEL, false) {
                Ok(x) => x,
                Err(_) => return false,
            };
            if new {
                match k2.zswap.load(&f) {
                    Ok(()) => {}
                    Err(Error::ENOENT) => {
                        f.with_page_mut(0, |p| {
                            swapcache::SwapBackend::read_page(&*k2.backend, x, p)
                        })
                        .unwrap()
                        .unwrap();
                        f.set_uptodate();
                    }
                    Err(e) => panic!("load: {e:?}"),
                }
            } else {
                f.lock();
            }
            // Redirty and swap out again while still in the swap cache.
            f.with_page_mut(0, |p| p.copy_from_slice(&v2b[..])).unwrap();
            if k2.zswap.store(&f).is_err() {
                f.with_page(0, |p| {
                    swapcache::SwapBackend::write_page(&*k2.backend, x, p)
                })
                .unwrap()
                .unwrap();
            }
            k2.swap.delete_from_swap_cache(&f);
            f.unlock();
            true
        });
        let _ = k.zswap.shrink_memcg(&cg);
        let rewrote = t.join().unwrap();
        assert!(k.swap.lookup(x).is_none());
        let want: &[u8; PAGE_SIZE] = if rewrote { &v2 } else { &v1 };
        assert_eq!(&k.swap_in(x).unwrap()[..], &want[..]);
        k.release(x);
        assert_eq!(k.zswap.stats().stored_pages, 0);
    });
}

/// The global shrink worker races the offlining of the cgroup it shrinks:
/// the cursor moves off the dying cgroup, its entries move to the parent,
/// and everything is written back or freed exactly once.
#[test]
fn loom_shrink_worker_vs_memcg_offline() {
    model("shrink worker vs memcg offline", || {
        let k = Kernel::new(Config {
            params: ZswapParams {
                max_pool_percent: 10,
                accept_threshold_percent: 50,
                shrinker_enabled: true,
                ..ZswapParams::default()
            },
            ..tiny_config()
        });
        let cg = k.cgroup("a");
        let pages = [incompressible(1), incompressible(2)];
        let slots: Vec<_> = pages
            .iter()
            .map(|p| k.swap_out_stored(p, Some(&cg)))
            .collect();
        rotate_all(&k, &cg);
        // Shrink the limit to one page: the worker writes everything back.
        k.zswap.set_param("max_pool_percent", "2").unwrap();
        let k2 = k.clone();
        let cg2 = cg.clone();
        let t = spawn(move || {
            k2.memcg.as_ref().unwrap().offline("a").unwrap();
            k2.zswap.memcg_offline(&cg2).unwrap();
        });
        k.zswap.shrink_worker();
        t.join().unwrap();
        assert_eq!(k.zswap.lru_count(Some(&cg)), 0);
        let s = k.zswap.stats();
        assert_eq!(s.stored_pages + s.written_back_pages, 2);
        for (s, p) in slots.iter().zip(&pages) {
            assert_eq!(&k.swap_in(*s).unwrap()[..], &p[..]);
        }
        assert_eq!(k.zswap.stats().stored_pages, 0);
        assert_eq!(k.zswap.lru_entries(), 0);
    });
}

/// Two slots busy at once: a store of Y races the shrinker writing X back.
/// Store nests tree -> LRU (its final LRU add) while the walker takes the
/// LRU list lock and then, with it dropped, the tree lock: a walker that
/// took the tree lock under the list lock would deadlock here. Y's folio is
/// put in the swap cache before the race (only zswap's store runs against
/// the shrinker); both pages come back, X from the device, Y from zswap.
#[test]
fn loom_store_of_y_vs_shrink_of_x() {
    model("store Y vs shrink X", || {
        let k = tiny();
        let cg = k.cgroup("a");
        let px = compressible(1);
        let x = k.swap_out_stored(&px, Some(&cg));
        rotate_all(&k, &cg);
        let py = compressible(2);
        let fy = k.page_folio(&py);
        fy.set_memcg_id(cg.id());
        fy.lock();
        let y = k.swap.add_to_swap(&fy, kbase::Gfp::KERNEL).unwrap();
        k.swap.swap_cgroup_record(y, 1, cg.id()).unwrap();
        let k2 = k.clone();
        let fy2 = fy.clone();
        let t = spawn(move || k2.zswap.store(&fy2));
        // X is the unreferenced head: it is the one written back.
        let shrunk = k.zswap.shrink_memcg(&cg);
        t.join().unwrap().unwrap();
        shrunk.unwrap();
        k.swap.delete_from_swap_cache(&fy);
        fy.unlock();
        drop(fy);
        assert!(!k.zswap.is_present(x));
        assert!(k.zswap.is_present(y));
        let s = k.zswap.stats();
        assert_eq!((s.stored_pages, s.written_back_pages), (1, 1));
        assert_eq!(k.zswap.lru_count(Some(&cg)), 1);
        assert_eq!(&k.swap_in(x).unwrap()[..], &px[..]);
        assert_eq!(&k.swap_in(y).unwrap()[..], &py[..]);
        assert_eq!(k.zswap.stats().stored_pages, 0);
        assert_eq!(cg.zswap_current(), 0);
    });
}

/// Two slots busy at once: a fault loads Y while the shrinker writes X
/// back. Y's folio is in the swap cache before the race (only zswap's load
/// runs against the shrinker); the load erases Y (exclusive) while the
/// walker has X isolated, neither touches the other's entry, and both pages
/// come back.
#[test]
fn loom_load_of_y_vs_writeback_of_x() {
    model("load Y vs writeback X", || {
        let k = tiny();
        let cg = k.cgroup("a");
        let px = compressible(3);
        let x = k.swap_out_stored(&px, Some(&cg));
        let py = compressible(4);
        let y = k.swap_out_stored(&py, Some(&cg));
        rotate_all(&k, &cg);
        let (fy, new) = k
            .swap
            .read_swap_cache_async(y, kbase::Gfp::KERNEL, false)
            .unwrap();
        assert!(new);
        let k2 = k.clone();
        let fy2 = fy.clone();
        let t = spawn(move || k2.zswap.load(&fy2));
        // X is the head: examined and written back; Y is never picked.
        let shrunk = k.zswap.shrink_memcg(&cg);
        t.join().unwrap().unwrap();
        shrunk.unwrap();
        fy.with_page(0, |p| assert_eq!(&p[..], &py[..])).unwrap();
        fy.unlock();
        drop(fy);
        let s = k.zswap.stats();
        assert_eq!((s.written_back_pages, s.zswpin), (1, 1));
        assert_eq!(s.stored_pages, 0);
        assert!(k.swap.lookup(x).is_none());
        assert_eq!(&k.swap_in(x).unwrap()[..], &px[..]);
        assert_eq!(&k.swap_in(y).unwrap()[..], &py[..]);
        assert_eq!(k.zswap.lru_entries(), 0);
        assert_eq!(cg.zswap_current(), 0);
        assert_eq!(k.zswap.stats().pool_total_size, 0);
    });
}

/// Two slots busy at once: process exit invalidates X while the pool's
/// compaction shrinker empties a sparse zspage. Under loom zspages are two
/// pages long: three raw pages fill zspage A with {0, Y} and start B with
/// {X}; releasing 0 leaves both half full, so compaction moves X into A or
/// Y into B, or packs A once X is freed (one source zspage per class-lock
/// hold) while X's free races it; then a fault loads Y. Whatever the order, X is gone, Y's folio
/// holds its page byte-exact, the pool gives back every page between compaction and the
/// frees (compaction's share counted in `pages_compacted`), and nothing
/// leaks.
#[test]
fn loom_invalidate_vs_compaction() {
    COMPACTED.store(0, Ordering::Relaxed);
    model("invalidate X vs compaction", || {
        let k = Kernel::new(Config {
            params: ZswapParams::default(),
            ..tiny_config()
        });
        let cg = k.cgroup("a");
        let pages: Vec<_> = (0..3u64).map(|i| incompressible(100 + i)).collect();
        let slots: Vec<_> = pages
            .iter()
            .map(|p| k.swap_out_stored(p, Some(&cg)))
            .collect();
        k.release(slots[0]);
        let sc0 = ShrinkControl::new(None, 0);
        assert!(k.zswap.pool_shrinker_count(&sc0) >= 1, "nothing to compact");
        let before = k.zswap.total_pages();
        let (y, x) = (slots[1], slots[2]);
        let (fy, new) = k
            .swap
            .read_swap_cache_async(y, kbase::Gfp::KERNEL, false)
            .unwrap();
        assert!(new);
        let k2 = k.clone();
        let tx = spawn(move || k2.release(x));
        let mut sc = ShrinkControl::new(None, 4);
        let freed = match k.zswap.pool_shrinker_scan(&mut sc) {
            ShrinkResult::Freed(f) => f,
            ShrinkResult::Stop => 0,
        };
        if freed > 0 {
            COMPACTED.fetch_add(1, Ordering::Relaxed);
        }
        tx.join().unwrap();
        // Y, moved or not, loads back (a third thread loading Y during the
        // race makes the model too large for CI at bound 2).
        k.zswap.load(&fy).unwrap();
        fy.with_page(0, |p| assert_eq!(&p[..], &pages[1][..]))
            .unwrap();
        fy.unlock();
        drop(fy);
        assert!(!k.zswap.is_present(x));
        assert!(k.swap.lookup(x).is_none());
        assert!(!k.zswap.is_present(y), "load is exclusive");
        let s = k.zswap.stats();
        assert_eq!(s.pages_compacted, freed as u64);
        assert_eq!((s.stored_pages, s.written_back_pages, s.zswpin), (0, 0, 1));
        // Both objects gone: compaction and the two frees gave back every
        // page between them, compaction no more than it moved out.
        assert!(freed < before, "{before} pages, {freed} compacted");
        assert_eq!(k.zswap.total_pages(), 0);
        assert_eq!(k.zswap.lru_count(Some(&cg)), 0);
        assert_eq!(&k.swap_in(y).unwrap()[..], &pages[1][..]);
        let s = k.zswap.stats();
        assert_eq!(s.stored_pages, 0);
        assert_eq!(s.pool_total_size, 0);
        assert_eq!(k.zswap.total_pages(), 0);
        assert_eq!(k.zswap.lru_entries(), 0);
        assert_eq!(cg.zswap_current(), 0);
    });
    // Compaction gave pages back (it moves X or Y, or packs Y's zspage
    // once X is gone): the model exercises the pool's move path.
    let c = COMPACTED.load(Ordering::Relaxed);
    eprintln!("  compaction freed pages in {c} of them");
    assert!(c > 0, "compaction never ran first");
}

/// A fault loads the only entry of the current pool while the compressor
/// is switched: the put of the entry's pool reference (on its CPU's count,
/// or under the pool table's write lock once the pool is no longer
/// current) races the switch, which drops the old pool's "current"
/// reference. Whatever the order, the data comes back and the old pool is
/// gone once both are done (freed by the put, by the switch, or reaped by
/// the next look at the pools if the put's decrement came unseen).
#[cfg(feature = "zstd")]
#[test]
fn loom_load_vs_compressor_switch() {
    model("load vs compressor switch", || {
        let k = tiny();
        let page = compressible(4);
        let x = k.swap_out_stored(&page, None);
        let k2 = k.clone();
        let t = spawn(move || k2.zswap.set_param("compressor", "zstd"));
        let back = k.swap_in(x).unwrap();
        t.join().unwrap().unwrap();
        assert_eq!(&back[..], &page[..]);
        assert_eq!(k.zswap.nr_pools(), 1, "the old pool went with its entry");
        let s = k.zswap.stats();
        assert_eq!(s.stored_pages, 0);
        assert_eq!(s.pool_total_size, 0);
    });
}

/// Two CPUs, so the LRU map's big-reader lock has two locks: a fault loads
/// X and a store of Y follows (deletes and adds on whichever CPU the task
/// is on) while the cgroup goes offline on CPU 1 (reparenting takes both
/// map locks). X comes back, Y ends on the parent's list (through the dead
/// cgroup's redirect or, refused a record, on the parent's own), and the
/// redirect goes with the last entry keyed by it.
#[test]
fn loom_load_and_store_vs_memcg_offline_on_two_cpus() {
    model("load and store vs memcg offline, two cpus", || {
        let k = Kernel::new(Config {
            nr_cpus: 2,
            online_cpus: 2,
            ..tiny_config()
        });
        let cg = k.cgroup("a");
        let (px, py) = (compressible(4), compressible(5));
        let x = k.swap_out_stored(&px, Some(&cg));
        let k2 = k.clone();
        let cg2 = cg.clone();
        let t = spawn(move || {
            k2.zswap.platform().cpus.current.store(1, Ordering::SeqCst);
            k2.memcg.as_ref().unwrap().offline("a").unwrap();
            k2.zswap.memcg_offline(&cg2).unwrap();
        });
        assert_eq!(&k.swap_in(x).unwrap()[..], &px[..]);
        let y = k.swap_out_stored(&py, Some(&cg));
        t.join().unwrap();
        assert_eq!(k.zswap.lru_count(Some(&cg)), 0);
        assert_eq!(k.zswap.lru_entries(), 1);
        assert_eq!(k.zswap.lru_count(None), 1, "Y is on root's list");
        assert_eq!(&k.swap_in(y).unwrap()[..], &py[..]);
        assert_eq!(k.zswap.lru_entries(), 0);
        assert_eq!(k.zswap.lru_records(), 1, "only root's record is left");
    });
}

/// The first stores charged to no cgroup, on two CPUs at once, race to make
/// the root's LRU record and to leave the one pin it keeps for good (later
/// stores charged to no cgroup take none): both entries land on root's
/// list, whichever CPU won, and the record outlives them.
#[test]
fn loom_first_uncharged_stores_on_two_cpus() {
    model("first uncharged stores, two cpus", || {
        let k = Kernel::new(Config {
            nr_cpus: 2,
            online_cpus: 2,
            ..tiny_config()
        });
        let (px, py) = (compressible(6), compressible(7));
        let k2 = k.clone();
        let t = spawn(move || {
            k2.zswap.platform().cpus.current.store(1, Ordering::SeqCst);
            k2.swap_out_stored(&py, None)
        });
        let x = k.swap_out_stored(&px, None);
        let y = t.join().unwrap();
        assert_eq!(k.zswap.lru_count(None), 2);
        // A third store takes the lifetime pin's way.
        let z = k.swap_out_stored(&compressible(8), None);
        assert_eq!(k.zswap.lru_count(None), 3);
        for s in [x, y, z] {
            k.release(s);
        }
        assert_eq!(k.zswap.lru_entries(), 0);
        assert_eq!(k.zswap.lru_records(), 1, "root's record stays");
    });
}

/// The tree is locked per swap cluster: a fault loads X from cluster 0 on
/// CPU 0 (the slot's leaf empties and is freed after the lock is dropped)
/// while a store of Y into cluster 1 on CPU 1 finds no leaf, allocates one
/// with the lock dropped and publishes Y on the retry (and adds it to the
/// LRU under that cluster's lock). The two take different tree locks and
/// touch different leaves; whatever the interleaving, X comes back, Y is
/// stored once and reads back, and what counts the whole tree (swapoff's
/// "entries left" check, one cluster lock at a time) sees Y and then none.
#[test]
fn loom_load_and_store_in_two_swap_clusters() {
    model("load and store in two swap clusters", || {
        let k = Kernel::new(Config {
            nr_cpus: 2,
            online_cpus: 2,
            swap_pages: 2 * swapcache::SWAPFILE_CLUSTER as u64,
            ..tiny_config()
        });
        let (px, py) = (compressible(9), compressible(10));
        let x = k.swap_out_stored(&px, None);
        // Cluster 0 holds X: a whole cluster's run is cluster 1.
        let y = k
            .swap
            .get_swap_pages(swapcache::SWAPFILE_CLUSTER, kbase::Gfp::KERNEL)
            .unwrap();
        assert_eq!(y.offset(), swapcache::SWAPFILE_CLUSTER as u64);
        assert_eq!(x.offset() / swapcache::SWAPFILE_CLUSTER as u64, 0);
        let (fy, new) = k
            .swap
            .read_swap_cache_async(y, kbase::Gfp::KERNEL, false)
            .unwrap();
        assert!(new);
        fy.with_page_mut(0, |p| p.copy_from_slice(&py[..])).unwrap();
        let k2 = k.clone();
        let fy2 = fy.clone();
        let t = spawn(move || {
            k2.zswap.platform().cpus.current.store(1, Ordering::SeqCst);
            k2.zswap.store(&fy2)
        });
        assert_eq!(&k.swap_in(x).unwrap()[..], &px[..]);
        t.join().unwrap().unwrap();
        assert!(!k.zswap.is_present(x));
        assert!(k.zswap.is_present(y));
        let s = k.zswap.stats();
        assert_eq!((s.stored_pages, s.zswpin), (1, 1));
        assert_eq!(k.zswap.lru_entries(), 1);
        assert_eq!(k.zswap.swapoff(y.swp_type()), Err(Error::EBUSY));
        // Y's fault: its folio is still the swap cache's, locked.
        fy.with_page_mut(0, |p| p.fill(0)).unwrap();
        k.zswap.load(&fy).unwrap();
        fy.with_page(0, |p| assert_eq!(&p[..], &py[..])).unwrap();
        assert!(!k.zswap.is_present(y));
        assert_eq!(k.zswap.lru_entries(), 0);
        assert_eq!(k.zswap.stats().stored_pages, 0);
        assert_eq!(k.zswap.swapoff(y.swp_type()), Ok(()));
        fy.unlock();
    });
}

/// Two CPUs' LRU sub-lists: X was stored on CPU 0 and Y on CPU 1, so they
/// sit on the two sub-lists of the cgroup's one list. Then, at once: CPU 1
/// stores Z (onto its sub-list, behind Y) and invalidates Y (from that
/// sub-list, whichever CPU the model's shared current CPU says), while the
/// shrinker walks two steps: X from sub-list 0 (written back), then
/// sub-list 1's head, whatever it is by then (Y: written back or found
/// gone; Z: referenced, rotated), or, that sub-list empty for a moment, an
/// empty walk. Whatever the interleaving, X comes back, Y is gone, Z is
/// still stored and comes back, and the LRU ends empty.
#[test]
fn loom_stores_on_two_sublists_vs_walk_and_invalidate() {
    model(
        "stores on two sub-lists vs walk and invalidate, two cpus",
        || {
            let k = Kernel::new(Config {
                nr_cpus: 2,
                online_cpus: 2,
                ..tiny_config()
            });
            let cg = k.cgroup("a");
            let (px, py, pz) = (compressible(11), compressible(12), compressible(13));
            let x = k.swap_out_stored(&px, Some(&cg));
            k.zswap.platform().cpus.current.store(1, Ordering::SeqCst);
            let y = k.swap_out_stored(&py, Some(&cg));
            k.zswap.platform().cpus.current.store(0, Ordering::SeqCst);
            // One rotation each (the walk takes the two sub-lists in turn):
            // both unreferenced now, the cursor back at sub-list 0.
            rotate_all(&k, &cg);
            assert_eq!(k.zswap.lru_count(Some(&cg)), 2);
            let fz = k.page_folio(&pz);
            fz.set_memcg_id(cg.id());
            fz.lock();
            let z = k.swap.add_to_swap(&fz, kbase::Gfp::KERNEL).unwrap();
            k.swap.swap_cgroup_record(z, 1, cg.id()).unwrap();
            let k2 = k.clone();
            let fz2 = fz.clone();
            let t = spawn(move || {
                k2.zswap.platform().cpus.current.store(1, Ordering::SeqCst);
                let r = k2.zswap.store(&fz2);
                k2.release(y);
                r
            });
            let mut sc = ShrinkControl::new(Some(cg.clone()), 2);
            let _ = k.zswap.shrinker_scan(&mut sc);
            t.join().unwrap().unwrap();
            k.swap.delete_from_swap_cache(&fz);
            fz.unlock();
            drop(fz);
            assert!(!k.zswap.is_present(x), "X was sub-list 0's head");
            assert!(!k.zswap.is_present(y));
            assert!(k.zswap.is_present(z), "Z was referenced");
            assert_eq!(k.zswap.lru_count(Some(&cg)), 1);
            let s = k.zswap.stats();
            assert_eq!(s.stored_pages, 1);
            assert!(matches!(s.written_back_pages, 1 | 2), "{s:?}");
            assert_eq!(&k.swap_in(x).unwrap()[..], &px[..]);
            assert_eq!(&k.swap_in(z).unwrap()[..], &pz[..]);
            assert_eq!(k.zswap.stats().stored_pages, 0);
            assert_eq!(k.zswap.lru_entries(), 0);
            assert_eq!(cg.zswap_current(), 0);
        },
    );
}
