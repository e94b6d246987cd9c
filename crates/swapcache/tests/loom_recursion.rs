//! Loom models of `read_swap_cache_async`, driving this crate's real code
//! through the `kbase::sync` shim.
//!
//! - The recursion: a fault on slot X holds `SWAP_HAS_CACHE` and, from inside
//!   its memcg charge, runs "reclaim" whose zswap writeback calls
//!   `read_swap_cache_async(X, .., skip_if_exists)` while a second thread
//!   swaps slot Y in and frees it. With `skip_if_exists = true` every
//!   interleaving completes and the inner call gets `EEXIST`; with `false`
//!   the inner call waits on its own caller and loom reports it.
//! - Two faults racing on one slot: one owns it, the other waits (bounded)
//!   and then gets the cached folio.
//! - A fault racing the last `swap_free` of its slot: the slot is freed
//!   exactly once, whoever finishes last.
//!
//! Shared state is leaked (`Box::leak`) rather than reference counted with
//! loom's `Arc`: the livelock test ends in a panic, and a loom `Arc` dropped
//! while unwinding would abort the test binary.
#![cfg(loom)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::SeqCst};

use kbase::sync::cpu_relax;
use kbase::{Error, Gfp, HeapPageAllocator, KArc, PageAllocator, Result};
use loom::thread;
use swapcache::{Folio, FolioRef, SwapPlatform, SwapSpace, SwpEntry};

/// What the charge hook does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Charge {
    /// Charge succeeds at once.
    Plain,
    /// Charging slot X runs reclaim, which writes X back:
    /// `read_swap_cache_async(X, .., skip_if_exists)`.
    ReclaimSame { x: SwpEntry, skip_if_exists: bool },
}

/// Outcome codes of the nested call (0: it did not run).
const INNER_NONE: u32 = 0;
const INNER_EEXIST: u32 = 1;
const INNER_OTHER: u32 = 2;

struct ModelPlatform {
    alloc: &'static HeapPageAllocator,
    space: OnceLock<&'static Space>,
    charge: Charge,
    /// Waits allowed before `swapcache_wait` gives up with `EAGAIN`
    /// (`u32::MAX`: wait forever, as a kernel would).
    max_waits: u32,
    charges: AtomicUsize,
    waits: AtomicUsize,
    inner: AtomicU32,
    freed: [AtomicUsize; 4],
}

type Space = SwapSpace<ModelPlatform>;

impl SwapPlatform for ModelPlatform {
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.alloc
    }

    fn charge_swapin(&self, _folio: &Folio, entry: SwpEntry, gfp: Gfp) -> Result<()> {
        self.charges.fetch_add(1, SeqCst);
        if let Charge::ReclaimSame { x, skip_if_exists } = self.charge
            && entry == x
            && let Some(space) = self.space.get()
        {
            // Reclaim -> zswap shrinker -> writeback of X, from inside the
            // fault on X that holds X's SWAP_HAS_CACHE.
            let code = match space.read_swap_cache_async(x, gfp, skip_if_exists) {
                Err(Error::EEXIST) => INNER_EEXIST,
                _ => INNER_OTHER,
            };
            self.inner.store(code, SeqCst);
        }
        Ok(())
    }

    fn slot_freed(&self, entry: SwpEntry) {
        if let Some(c) = self.freed.get(entry.offset() as usize) {
            c.fetch_add(1, SeqCst);
        }
    }

    fn swapcache_wait(&self, _entry: SwpEntry, attempt: u32) -> Result<()> {
        self.waits.fetch_add(1, SeqCst);
        if attempt >= self.max_waits {
            // Model-only bound on the retry loop.
            return Err(Error::EAGAIN);
        }
        cpu_relax();
        Ok(())
    }
}

/// A leaked space with one 4-slot device (one cluster) whose slots 0 and 1
/// hold one swap reference each.
fn setup(charge: Charge, max_waits: u32) -> &'static Space {
    let alloc: &'static HeapPageAllocator = Box::leak(Box::new(HeapPageAllocator::new()));
    let space: &'static Space = Box::leak(Box::new(SwapSpace::new(ModelPlatform {
        alloc,
        space: OnceLock::new(),
        charge,
        max_waits,
        charges: AtomicUsize::new(0),
        waits: AtomicUsize::new(0),
        inner: AtomicU32::new(INNER_NONE),
        freed: Default::default(),
    })));
    assert!(space.platform().space.set(space).is_ok());
    assert_eq!(space.swapon(4, Gfp::KERNEL), Ok(0));
    assert_eq!(space.get_swap_pages(1, Gfp::KERNEL), Ok(slot(0)));
    assert_eq!(space.get_swap_pages(1, Gfp::KERNEL), Ok(slot(1)));
    space
}

fn slot(off: u64) -> SwpEntry {
    SwpEntry::new(0, off).unwrap()
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    // LOOM_MAX_PREEMPTIONS overrides; bounded by default all the same.
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b
}

static ITERS: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` as a loom model and prints iterations and time.
fn run(name: &str, f: impl Fn() + Sync + Send + 'static) {
    ITERS.store(0, SeqCst);
    let b = builder();
    let bound = b.preemption_bound;
    let t0 = std::time::Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.check(move || {
            ITERS.fetch_add(1, SeqCst);
            f();
        })
    }));
    if let Err(p) = r {
        eprintln!(
            "loom {name}: FAILED on iteration {} after {:?}",
            ITERS.load(SeqCst),
            t0.elapsed()
        );
        std::panic::resume_unwind(p);
    }
    eprintln!(
        "loom {name}: {} iterations in {:?} (preemption_bound={bound:?})",
        ITERS.load(SeqCst),
        t0.elapsed()
    );
}

/// Thread 2 of the recursion model: swap slot Y in, drop it from the cache,
/// drop the last reference.
fn swap_in_and_free(space: &'static Space, y: SwpEntry) {
    let (f, new) = space.read_swap_cache_async(y, Gfp::KERNEL, false).unwrap();
    assert!(new, "nobody else touches Y");
    f.set_uptodate();
    f.unlock();
    space.delete_from_swap_cache(&f);
    space.swap_free(y).unwrap();
}

/// The fault on X whose charge recurses into writeback of X.
fn recursion_model(skip_if_exists: bool) {
    let x = slot(0);
    let y = slot(1);
    let space = setup(
        Charge::ReclaimSame { x, skip_if_exists },
        u32::MAX, // a kernel waits forever
    );
    let th = thread::spawn(move || swap_in_and_free(space, y));
    let (f, new) = space.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap();
    th.join().unwrap();

    let p = space.platform();
    assert!(new);
    assert!(f.is_locked());
    assert_eq!(p.inner.load(SeqCst), INNER_EEXIST, "writeback skipped X");
    assert_eq!(p.waits.load(SeqCst), 0, "nobody waited");
    // One charge for X's fault, one for Y's swap-in; none for the skip.
    assert_eq!(p.charges.load(SeqCst), 2);
    assert!(KArc::ptr_eq(&space.lookup(x).unwrap(), &f));
    assert_eq!(space.has_cache(x), Ok(true));
    assert_eq!(space.swap_count(x), Ok(1));
    assert_eq!(p.freed[0].load(SeqCst), 0);
    assert_eq!(p.freed[1].load(SeqCst), 1, "Y freed exactly once");
    assert_eq!(space.inuse_pages(0), Ok(1));
    // X's folio is the only page left: the skipped call freed its spare.
    assert_eq!(p.alloc.allocated_pages(), 1);
}

#[test]
fn recursion_with_skip_if_exists_completes() {
    run("recursion_with_skip_if_exists_completes", || {
        recursion_model(true)
    });
}

/// The same model without `skip_if_exists`: the inner call waits for a
/// folio only its own caller can insert. Loom reports the spin that never
/// ends on the first iteration.
#[test]
// loom's exact message for a thread that spins without progress (a
// recursive wait), not just any panic.
#[should_panic(
    expected = "Model exceeded maximum number of branches. This is often caused by an \
                algorithm requiring the processor to make progress, e.g. spin locks."
)]
fn recursion_without_skip_if_exists_livelocks() {
    run("recursion_without_skip_if_exists_livelocks", || {
        recursion_model(false)
    });
}

/// Counts interleavings where the second fault really waited and then hit.
static WAITED_THEN_HIT: AtomicUsize = AtomicUsize::new(0);

/// Two faults on the same slot X.
#[test]
fn two_faults_on_one_slot_share_the_folio() {
    WAITED_THEN_HIT.store(0, SeqCst);
    run("two_faults_on_one_slot_share_the_folio", || {
        let x = slot(0);
        let space = setup(Charge::Plain, 3);
        let fault = move || -> Result<(FolioRef, bool)> {
            let (f, new) = space.read_swap_cache_async(x, Gfp::KERNEL, false)?;
            if new {
                f.set_uptodate();
                f.unlock();
            }
            Ok((f, new))
        };
        let th = thread::spawn(fault);
        let a = fault();
        let b = th.join().unwrap();
        let p = space.platform();
        match (a, b) {
            (Ok((fa, na)), Ok((fb, nb))) => {
                assert!(KArc::ptr_eq(&fa, &fb), "one folio for the slot");
                assert!(na ^ nb, "exactly one fault allocated it");
                if p.waits.load(SeqCst) > 0 {
                    WAITED_THEN_HIT.fetch_add(1, SeqCst);
                }
            }
            // Only the model's retry bound fails a fault, and only while
            // the other one owned the slot.
            (Ok((_, true)), Err(Error::EAGAIN)) | (Err(Error::EAGAIN), Ok((_, true))) => {}
            (a, b) => panic!(
                "unexpected outcome {:?} / {:?}",
                a.map(|r| r.1),
                b.map(|r| r.1)
            ),
        }
        assert_eq!(p.charges.load(SeqCst), 1, "charged once");
        let cached = space.lookup(x).unwrap();
        assert!(cached.test_uptodate() && !cached.is_locked());
        assert_eq!(space.has_cache(x), Ok(true));
        drop(cached);
        // Spare folios of the losing fault were freed.
        assert_eq!(p.alloc.allocated_pages(), 1);
    });
    assert!(
        WAITED_THEN_HIT.load(SeqCst) > 0,
        "some interleaving must wait and then hit"
    );
}

/// A fault on X racing the last `swap_free(X)`: whichever order, the slot
/// is freed exactly once, and never while the fault owns it.
#[test]
fn fault_racing_last_free_frees_the_slot_once() {
    run("fault_racing_last_free_frees_the_slot_once", || {
        let x = slot(0);
        let space = setup(Charge::Plain, 3);
        let th = thread::spawn(move || space.swap_free(x).unwrap());
        match space.read_swap_cache_async(x, Gfp::KERNEL, false) {
            Ok((f, new)) => {
                assert!(new);
                f.unlock();
                space.delete_from_swap_cache(&f);
            }
            Err(e) => assert_eq!(e, Error::ENOENT),
        }
        th.join().unwrap();
        let p = space.platform();
        assert_eq!(p.freed[0].load(SeqCst), 1);
        assert_eq!(space.swap_count(x), Ok(0));
        assert_eq!(space.has_cache(x), Ok(false));
        assert!(space.lookup(x).is_none());
        assert_eq!(space.inuse_pages(0), Ok(1), "only slot 1 is left");
        assert_eq!(p.alloc.allocated_pages(), 0);
    });
}
