//! Random operation sequences on a `SwapSpace`, checked against a plain
//! model of every slot (swap count, `SWAP_HAS_CACHE`, cached folio, memcg
//! record) and of the platform calls (slot frees, charges).
#![cfg(not(loom))]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use kbase::{Error, Gfp, HeapPageAllocator, KArc, PageAllocator, Result};
use proptest::prelude::*;
use swapcache::{
    Folio, FolioRef, SWAP_MAP_MAX, SWAPFILE_CLUSTER, SwapPlatform, SwapSpace, SwpEntry,
};

struct Platform {
    alloc: &'static HeapPageAllocator,
    freed: Mutex<Vec<SwpEntry>>,
    charges: AtomicUsize,
}

impl SwapPlatform for Platform {
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.alloc
    }
    fn charge_swapin(&self, _folio: &Folio, _entry: SwpEntry, _gfp: Gfp) -> Result<()> {
        self.charges.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn slot_freed(&self, entry: SwpEntry) {
        self.freed.lock().unwrap().push(entry);
    }
    fn swapcache_wait(&self, _entry: SwpEntry, _attempt: u32) -> Result<()> {
        // Single-threaded: nobody else can make progress.
        Err(Error::EDEADLK)
    }
}

/// Device sizes: a small first device (fills up, ENOSPC paths) and one
/// spanning two clusters.
const DEV0: u64 = 6;
const DEV1: u64 = SWAPFILE_CLUSTER as u64 + 18;

#[derive(Clone, Debug)]
enum Op {
    GetSwapPages(usize),
    AddToSwap(usize),
    Duplicate(usize),
    Free(usize),
    FreeAndCache(usize),
    Prepare(usize),
    Clear(usize),
    Rsca(usize, bool),
    Delete(usize),
    Record(usize, u32),
    BadEntry(u32, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0usize..64;
    prop_oneof![
        3 => (1usize..=4).prop_map(Op::GetSwapPages),
        2 => prop_oneof![Just(1usize), Just(2), Just(4)].prop_map(Op::AddToSwap),
        3 => i.clone().prop_map(Op::Duplicate),
        4 => i.clone().prop_map(Op::Free),
        2 => i.clone().prop_map(Op::FreeAndCache),
        2 => i.clone().prop_map(Op::Prepare),
        2 => i.clone().prop_map(Op::Clear),
        4 => (i.clone(), any::<bool>()).prop_map(|(i, s)| Op::Rsca(i, s)),
        2 => i.clone().prop_map(Op::Delete),
        1 => (i, 1u32..5).prop_map(|(i, m)| Op::Record(i, m)),
        1 => (0u32..32, 0u64..DEV1 + 4).prop_map(|(t, o)| Op::BadEntry(t, o)),
    ]
}

#[derive(Clone, Default, Debug)]
struct Slot {
    count: u32,
    has_cache: bool,
    /// Id of the cached folio (index into `folios`).
    cached: Option<usize>,
    memcg: u32,
    freed: usize,
}

impl Slot {
    fn in_use(&self) -> bool {
        self.count != 0 || self.has_cache
    }
}

struct Model {
    slots: BTreeMap<SwpEntry, Slot>,
    /// Folios the test created; the cache refers to them by index.
    folios: Vec<(FolioRef, SwpEntry)>,
    charges: usize,
}

impl Model {
    fn slot(&mut self, e: SwpEntry) -> &mut Slot {
        self.slots.entry(e).or_default()
    }

    fn dev_size(t: u32) -> u64 {
        if t == 0 { DEV0 } else { DEV1 }
    }

    /// Does a free aligned run of `nr` exist on device `t`?
    fn has_run(&self, t: u32, nr: usize) -> bool {
        let size = Self::dev_size(t);
        let align = if nr.is_power_of_two() { nr as u64 } else { 1 };
        let mut start = 0;
        while start + nr as u64 <= size {
            let same_cluster = start / SWAPFILE_CLUSTER as u64
                == (start + nr as u64 - 1) / SWAPFILE_CLUSTER as u64;
            let free = (0..nr as u64).all(|i| {
                !self
                    .slots
                    .get(&SwpEntry::new(t, start + i).unwrap())
                    .is_some_and(Slot::in_use)
            });
            if same_cluster && free {
                return true;
            }
            start += align;
        }
        false
    }

    /// Checks a run the space allocated and records it.
    fn allocated(&mut self, first: SwpEntry, nr: usize, has_cache: bool) {
        let t = first.swp_type();
        // Devices are tried in order: device 0 only if it had room.
        if t == 1 {
            assert!(!self.has_run(0, nr), "device 0 had room for {nr}");
        }
        if nr.is_power_of_two() {
            assert_eq!(first.offset() % nr as u64, 0, "natural alignment");
        }
        assert!(first.offset() + nr as u64 <= Self::dev_size(t));
        for i in 0..nr as u64 {
            let s = self.slot(first.checked_add(i).unwrap());
            assert!(!s.in_use(), "handed out a slot in use");
            s.count = 1;
            s.has_cache = has_cache;
            s.memcg = 0;
        }
    }

    /// After an operation: a slot that was in use and no longer is has been
    /// freed (once).
    fn maybe_free(&mut self, e: SwpEntry, was_in_use: bool) {
        let s = self.slot(e);
        if was_in_use && !s.in_use() {
            s.freed += 1;
            s.memcg = 0;
        }
    }

    /// The `nr` slots from `first` leave the swap cache (their folio was
    /// deleted from it); those no longer in use are freed.
    fn uncache(&mut self, first: SwpEntry, nr: usize) {
        for k in 0..nr as u64 {
            let ek = first.checked_add(k).unwrap();
            let sk = self.slot(ek);
            let was = sk.in_use();
            sk.cached = None;
            sk.has_cache = false;
            self.maybe_free(ek, was);
        }
    }
}

fn entry_for(model: &Model, i: usize) -> SwpEntry {
    // Mostly slots the model knows; otherwise spread over both devices.
    let known: Vec<_> = model.slots.keys().copied().collect();
    if !known.is_empty() && i % 4 != 3 {
        known[i % known.len()]
    } else {
        let t = (i % 2) as u32;
        SwpEntry::new(t, (i as u64 * 7) % Model::dev_size(t)).unwrap()
    }
}

fn check_all(space: &SwapSpace<Platform>, model: &Model) {
    let mut inuse = [0u64; 2];
    let mut freed_calls: BTreeMap<SwpEntry, usize> = BTreeMap::new();
    for &e in space.platform().freed.lock().unwrap().iter() {
        *freed_calls.entry(e).or_default() += 1;
    }
    for (&e, s) in &model.slots {
        assert_eq!(space.swap_count(e), Ok(s.count), "{e:?}: {s:?}");
        assert_eq!(space.has_cache(e), Ok(s.has_cache), "{e:?}: {s:?}");
        assert_eq!(space.lookup_swap_cgroup_id(e), s.memcg, "{e:?}");
        match s.cached {
            Some(id) => {
                let f = space.lookup(e).expect("cached folio");
                assert!(KArc::ptr_eq(&f, &model.folios[id].0));
            }
            None => assert!(space.lookup(e).is_none(), "{e:?} should not be cached"),
        }
        let freed = freed_calls.remove(&e).unwrap_or(0);
        assert_eq!(freed, s.freed, "slot_freed calls for {e:?}");
        if s.in_use() {
            inuse[e.swp_type() as usize] += 1;
        }
    }
    assert!(freed_calls.is_empty(), "freed slots the model never saw");
    assert_eq!(space.inuse_pages(0), Ok(inuse[0]));
    assert_eq!(space.inuse_pages(1), Ok(inuse[1]));
    assert_eq!(
        space.platform().charges.load(Ordering::SeqCst),
        model.charges
    );
}

fn run(ops: Vec<Op>) {
    let alloc: &'static HeapPageAllocator = Box::leak(Box::new(HeapPageAllocator::new()));
    let space = SwapSpace::new(Platform {
        alloc,
        freed: Mutex::new(Vec::new()),
        charges: AtomicUsize::new(0),
    });
    assert_eq!(space.swapon(DEV0, Gfp::KERNEL), Ok(0));
    assert_eq!(space.swapon(DEV1, Gfp::KERNEL), Ok(1));
    let mut m = Model {
        slots: BTreeMap::new(),
        folios: Vec::new(),
        charges: 0,
    };
    for op in ops {
        match op {
            Op::GetSwapPages(nr) => match space.get_swap_pages(nr, Gfp::KERNEL) {
                Ok(first) => m.allocated(first, nr, false),
                Err(e) => {
                    assert_eq!(e, Error::ENOSPC);
                    assert!(!m.has_run(0, nr) && !m.has_run(1, nr));
                }
            },
            Op::AddToSwap(nr) => {
                let f = Folio::alloc(alloc, nr, Gfp::KERNEL).unwrap();
                match space.add_to_swap(&f, Gfp::KERNEL) {
                    Ok(first) => {
                        m.allocated(first, nr, true);
                        let id = m.folios.len();
                        m.folios.push((f, first));
                        for i in 0..nr as u64 {
                            m.slot(first.checked_add(i).unwrap()).cached = Some(id);
                        }
                    }
                    Err(e) => {
                        assert_eq!(e, Error::ENOSPC);
                        assert!(!m.has_run(0, nr) && !m.has_run(1, nr));
                    }
                }
            }
            Op::Duplicate(i) => {
                let e = entry_for(&m, i);
                let s = m.slot(e);
                let want = if !s.in_use() {
                    Err(Error::ENOENT)
                } else if s.count >= u32::from(SWAP_MAP_MAX) {
                    Err(Error::ENOMEM)
                } else {
                    s.count += 1;
                    Ok(())
                };
                assert_eq!(space.swap_duplicate(e), want);
            }
            Op::Free(i) | Op::FreeAndCache(i) => {
                let e = entry_for(&m, i);
                let and_cache = matches!(op, Op::FreeAndCache(_));
                let before = m.slot(e).in_use();
                let s = m.slot(e);
                let want = if s.count == 0 {
                    Err(Error::ENOENT)
                } else {
                    s.count -= 1;
                    Ok(())
                };
                let got = if and_cache {
                    space.free_swap_and_cache(e)
                } else {
                    space.swap_free(e)
                };
                assert_eq!(got, want);
                m.maybe_free(e, before);
                // free_swap_and_cache drops an unlocked cached folio whose
                // slots are all unreferenced.
                if and_cache
                    && want.is_ok()
                    && m.slot(e).count == 0
                    && let Some(id) = m.slot(e).cached
                {
                    let (f, first) = m.folios[id].clone();
                    let all_unused = (0..f.nr_pages() as u64)
                        .all(|k| m.slot(first.checked_add(k).unwrap()).count == 0);
                    if all_unused {
                        m.uncache(first, f.nr_pages());
                    }
                }
            }
            Op::Prepare(i) => {
                let e = entry_for(&m, i);
                let s = m.slot(e);
                let want = if !s.in_use() {
                    Err(Error::ENOENT)
                } else if s.has_cache {
                    Err(Error::EEXIST)
                } else {
                    s.has_cache = true;
                    Ok(())
                };
                assert_eq!(space.swapcache_prepare(e), want);
            }
            Op::Clear(i) => {
                let e = entry_for(&m, i);
                let s = m.slot(e);
                let before = s.in_use();
                if s.cached.is_none() && s.has_cache {
                    s.has_cache = false;
                }
                space.swapcache_clear(e);
                m.maybe_free(e, before);
            }
            Op::Rsca(i, skip) => {
                let e = entry_for(&m, i);
                let got = space.read_swap_cache_async(e, Gfp::KERNEL, skip);
                let s = m.slot(e).clone();
                match (s.cached, got) {
                    (Some(id), Ok((f, false))) => assert!(KArc::ptr_eq(&f, &m.folios[id].0)),
                    (None, Err(Error::ENOENT)) => assert_eq!(s.count, 0),
                    (None, Err(Error::EEXIST)) => assert!(skip && s.has_cache && s.count > 0),
                    (None, Err(Error::EDEADLK)) => assert!(!skip && s.has_cache && s.count > 0),
                    (None, Ok((f, true))) => {
                        assert!(s.count > 0 && !s.has_cache);
                        assert!(f.is_locked());
                        f.unlock();
                        m.charges += 1;
                        let id = m.folios.len();
                        m.folios.push((f, e));
                        let s = m.slot(e);
                        s.has_cache = true;
                        s.cached = Some(id);
                    }
                    (want, got) => panic!(
                        "rsca({e:?}, {skip}) on {s:?}: cached {want:?}, got {:?}",
                        got.map(|r| r.1)
                    ),
                }
            }
            Op::Delete(i) => {
                let e = entry_for(&m, i);
                if let Some(id) = m.slot(e).cached {
                    let (f, first) = m.folios[id].clone();
                    space.delete_from_swap_cache(&f);
                    assert!(!f.test_swapcache());
                    m.uncache(first, f.nr_pages());
                }
            }
            Op::Record(i, id) => {
                let e = entry_for(&m, i);
                let s = m.slot(e);
                let want = if s.in_use() {
                    s.memcg = id;
                    Ok(())
                } else {
                    Err(Error::ENOENT)
                };
                assert_eq!(space.swap_cgroup_record(e, 1, id), want);
            }
            Op::BadEntry(t, off) => {
                let e = SwpEntry::new(t, off).unwrap();
                let want = if t >= 2 {
                    Some(Error::EINVAL)
                } else if off >= Model::dev_size(t) {
                    Some(Error::ENOENT)
                } else {
                    None
                };
                if let Some(err) = want {
                    assert_eq!(space.swap_count(e), Err(err));
                    assert_eq!(space.swap_free(e), Err(err));
                    assert_eq!(space.swapcache_prepare(e), Err(err));
                    assert_eq!(
                        space
                            .read_swap_cache_async(e, Gfp::KERNEL, true)
                            .map(|r| r.1),
                        Err(err)
                    );
                }
            }
        }
        check_all(&space, &m);
    }
    // Pages: exactly the folios the test still holds.
    let held: usize = m.folios.iter().map(|(f, _)| f.nr_pages()).sum();
    assert_eq!(alloc.allocated_pages(), held);
    for (f, _) in &m.folios {
        space.delete_from_swap_cache(f);
    }
    drop(m);
    assert_eq!(
        alloc.allocated_pages(),
        0,
        "the cache holds only references"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn slot_and_cache_ops_match_the_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops);
    }
}
