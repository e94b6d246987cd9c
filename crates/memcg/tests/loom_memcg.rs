//! Loom models of the memcg charging and offline protocols, run on the
//! crate's real code (its locks and atomics come from the kbase shim).
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo nextest run --release -p memcg --test loom_memcg`
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::thread;

use kbase::{Error, Gfp, KArc, PAGE_SIZE};
use memcg::{MemcgRef, MemcgTree, NoReclaim, ReclaimHook, ShrinkCursor};

const P: u64 = PAGE_SIZE as u64;

static ITERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    ITERS.store(0, std::sync::atomic::Ordering::Relaxed);
    b.check(move || {
        ITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f()
    });
    eprintln!(
        "loom: {} iterations (preemption_bound={:?})",
        ITERS.load(std::sync::atomic::Ordering::Relaxed),
        b.preemption_bound
    );
}

/// Two threads charge and uncharge one page each against a limit with room
/// for one more page: the limit is never exceeded, at most one charge wins
/// while the other holds its page, and every counter returns to its start.
#[test]
fn concurrent_charges_never_exceed_memory_max() {
    model(|| {
        let t = Arc::new(MemcgTree::new(Gfp::KERNEL).unwrap());
        let a = t.create("a", Gfp::KERNEL).unwrap();
        a.set_memory_max("8K").unwrap();
        t.try_charge(&a, 1, Gfp::NOWAIT, &NoReclaim).unwrap();
        let worker = |t: Arc<MemcgTree>| {
            let a = t.lookup("a").unwrap();
            match t.try_charge(&a, 1, Gfp::NOWAIT, &NoReclaim) {
                Ok(()) => {
                    assert!(a.memory_current() <= a.memory_max());
                    t.uncharge(&a, 1);
                    true
                }
                Err(e) => {
                    assert_eq!(e, Error::ENOMEM);
                    false
                }
            }
        };
        let t2 = t.clone();
        let th = thread::spawn(move || worker(t2));
        let mine = worker(t.clone());
        let theirs = th.join().unwrap();
        assert!(mine || theirs, "the limit had room for one page");
        assert!(a.memory_current() <= a.memory_max());
        assert_eq!(a.memory_current(), P);
        assert_eq!(t.root().memory_current(), P);
        t.uncharge(&a, 1);
        assert_eq!(t.root().memory_current(), 0);
    });
}

/// Reclaims by uncharging a page of `victim`, re-entering the tree (tree
/// lock, gates) the way zswap writeback re-enters memcg from the hook.
struct UnchargeHook {
    tree: Arc<MemcgTree>,
    victim: MemcgRef,
    left: loom::sync::atomic::AtomicU64,
}

impl ReclaimHook for UnchargeHook {
    fn reclaim(&self, _memcg: &MemcgRef, _nr_pages: u64, _gfp: Gfp) -> u64 {
        let _ = self.tree.iter_next(None);
        if self
            .left
            .fetch_update(SeqCst, SeqCst, |v| v.checked_sub(1))
            .is_ok()
        {
            self.tree.uncharge(&self.victim, 1);
            return 1;
        }
        0
    }
}

/// Two threads charge a full cgroup; their reclaim hooks free a page each
/// by re-entering the tree. No deadlock (no lock is held across the hook),
/// the limit holds at every step, and both charges end up in.
#[test]
fn charges_with_reentrant_reclaim_respect_the_limit() {
    model(|| {
        let t = Arc::new(MemcgTree::new(Gfp::KERNEL).unwrap());
        let a = t.create("a", Gfp::KERNEL).unwrap();
        a.set_memory_max("8K").unwrap();
        t.try_charge(&a, 2, Gfp::NOWAIT, &NoReclaim).unwrap();
        let hook = Arc::new(UnchargeHook {
            tree: t.clone(),
            victim: a.clone(),
            left: loom::sync::atomic::AtomicU64::new(2),
        });
        let worker = |t: Arc<MemcgTree>, a: MemcgRef, hook: Arc<UnchargeHook>| {
            let r = t.try_charge(&a, 1, Gfp::KERNEL, &*hook);
            assert!(a.memory_current() <= a.memory_max());
            r
        };
        let (t2, a2, h2) = (t.clone(), a.clone(), hook.clone());
        let th = thread::spawn(move || worker(t2, a2, h2));
        let mine = worker(t.clone(), a.clone(), hook.clone());
        let theirs = th.join().unwrap();
        assert_eq!((mine, theirs), (Ok(()), Ok(())));
        assert_eq!(a.memory_current(), 2 * P);
        t.uncharge(&a, 2);
        assert_eq!(t.root().memory_current(), 0);
    });
}

/// A zswap charge through the child's objcg and a page charge naming the
/// child race the child's offline: nothing is lost or counted twice, and the
/// uncharges (through the same stale handles) bring everything back to 0.
#[test]
fn offline_races_charges_without_losing_any() {
    model(|| {
        let t = Arc::new(MemcgTree::new(Gfp::KERNEL).unwrap());
        let a = t.create("a", Gfp::KERNEL).unwrap();
        let b = t.create("a/b", Gfp::KERNEL).unwrap();
        let ob = b.obj_cgroup().unwrap();
        let (b2, ob2, t2) = (b.clone(), ob.clone(), t.clone());
        let th = thread::spawn(move || {
            ob2.charge_zswap(100);
            t2.try_charge(&b2, 1, Gfp::NOWAIT, &NoReclaim).unwrap();
        });
        let off = t.offline("a/b").unwrap();
        th.join().unwrap();
        assert!(KArc::ptr_eq(&off.parent, &a));
        assert!(KArc::ptr_eq(&ob.memcg(), &a));
        // Everything now lives in a: nothing stayed behind in b.
        assert_eq!(b.memory_current(), 0);
        assert_eq!(b.stat_local().zswap, 0);
        assert_eq!(a.stat_local().zswap, 100);
        assert_eq!(a.memory_current(), 100 + P);
        assert_eq!(t.root().memory_current(), 100 + P);
        ob.uncharge_zswap(100);
        t.uncharge(&b, 1);
        assert_eq!(a.memory_current(), 0);
        assert_eq!(a.stat().zswap, 0);
        assert_eq!(t.root().memory_current(), 0);
    });
}

/// Uncharges through a stale handle (page, swap, zswap) race the offline
/// that moves those charges to the parent: every counter ends at exactly 0
/// (an uncharge applied to the child after its charges moved would leave the
/// parent's local zswap and the ancestors' usage behind).
#[test]
fn offline_races_uncharges() {
    model(|| {
        let t = Arc::new(MemcgTree::new(Gfp::KERNEL).unwrap());
        let a = t.create("a", Gfp::KERNEL).unwrap();
        let b = t.create("a/b", Gfp::KERNEL).unwrap();
        let ob = b.obj_cgroup().unwrap();
        t.try_charge(&b, 1, Gfp::NOWAIT, &NoReclaim).unwrap();
        ob.charge_zswap(100);
        let (b2, t2) = (b.clone(), t.clone());
        let th = thread::spawn(move || {
            ob.uncharge_zswap(100);
            t2.uncharge(&b2, 1);
        });
        t.offline("a/b").unwrap();
        th.join().unwrap();
        assert_eq!(a.stat_local().zswap, 0);
        assert_eq!(a.zswap_current(), 0);
        assert_eq!(a.memory_current(), 0);
        assert_eq!(t.root().memory_current(), 0);
        assert_eq!(t.root().zswap_current(), 0);
    });
}

/// The shrink worker's cursor races an offline followed by the offline
/// cleanup: no call that starts after the offline completed returns the
/// dying cgroup, and the cursor never keeps it once cleanup has run.
#[test]
fn offline_races_shrink_cursor() {
    model(|| {
        let t = Arc::new(MemcgTree::new(Gfp::KERNEL).unwrap());
        let b = t.create("b", Gfp::KERNEL).unwrap();
        let cursor = Arc::new(ShrinkCursor::new());
        let offlined = Arc::new(AtomicBool::new(false));
        // Put the cursor at root so the worker's next step is b.
        assert_eq!(cursor.next(&t).unwrap().id(), 1);
        let (t2, c2, b2, off2) = (t.clone(), cursor.clone(), b.clone(), offlined.clone());
        let th = thread::spawn(move || {
            let after = off2.load(SeqCst);
            if let Some(m) = c2.next(&t2) {
                assert!(!(after && KArc::ptr_eq(&m, &b2)), "offline cgroup returned");
            }
        });
        let off = t.offline("b").unwrap();
        offlined.store(true, SeqCst);
        cursor.offline_cleanup(&t, &off.memcg);
        th.join().unwrap();
        if let Some(p) = cursor.position() {
            assert!(!KArc::ptr_eq(&p, &b), "cursor kept the offline cgroup");
            assert!(p.is_online());
        }
    });
}
