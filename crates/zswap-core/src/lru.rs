//! The zswap `list_lru`: one list per (memory cgroup, NUMA node), split
//! into per-CPU sub-lists.
//!
//! Linux keeps one global `zswap_list_lru`, memcg-aware and NUMA-aware; every
//! compressed entry sits on the list of its cgroup and node, oldest at the
//! head. This is the same structure, with each (memcg, node) list split in
//! up to [`MAX_SUBLISTS`] per-CPU sub-lists:
//!
//! - a map from memcg id to a [`MemcgLru`] (an intrusive red-black tree
//!   behind a big-reader lock, [`MapLock`]: a reader takes its CPU's lock, so
//!   adds and deletes on different CPUs write no common line for it; a
//!   writer takes every CPU's; nodes are allocated before the lock is taken,
//!   Linux's `memcg_list_lru_alloc`),
//! - per node, `nr_sub = min(nr_cpus, MAX_SUBLISTS)` sub-lists (fixed when
//!   the [`Lru`] is made; one with one CPU), each a doubly linked list of
//!   entries under its own spinlock in a cache line of its own
//!   ([`SubList`]), plus, once per node, the lruvec's `nr_disk_swapins`
//!   counter used by the dynamic shrinker and the walk's cursor
//!   ([`NodeState`]). The links are 32-bit entry ids in the entries
//!   ([`LruLink`]), turned into entries by the entry cache
//!   (`EntryCache::entry`, two loads): 8 bytes of an entry instead of two
//!   pointers' 16.
//!
//! An entry goes on the sub-list of the CPU that stores it
//! (`cpu % nr_sub`, [`Lru::sublist_of`]), recorded in two bits of the entry
//! (`ZswapEntry::set_lru_sublist`), and is deleted from that same sub-list
//! by whichever CPU loads, invalidates or writes it back. So loads on two
//! CPUs of entries the two CPUs stored write different lines: with Linux's
//! one list per node, every delete of the root cgroup's entries on node 0
//! writes the one line of that list's lock, head, tail and count, and two
//! CPUs loading disjoint slots bounce it.
//!
//! # Writeback order (differs from Linux with more than one CPU)
//!
//! Linux writes back strictly oldest first per (memcg, node). Here the walk
//! ([`Lru::isolate_head`], the shrinker's and the writeback worker's) is
//! oldest first *within* one CPU's sub-list and round-robin *across* the
//! sub-lists: each step takes the head of the sub-list at the node's
//! cursor, skipping empty ones, and moves the cursor to the next. The
//! second chance (a referenced head is cleared and rotated) and the
//! rotation of a candidate are per sub-list. Across CPUs the order is
//! therefore approximate: while every sub-list has entries, each gets one
//! step of every `nr_sub`, so when one CPU stored much more, or much
//! earlier, than another, the other's newer entries are written back
//! sooner than Linux would. With one CPU there is one sub-list, no cursor,
//! and the walk is exactly Linux's.
//!
//! Why: with Linux's one list, every load deletes its entry from the
//! list, so two CPUs loading disjoint slots of root's entries on node 0
//! bounce that list's one cache line. The two-thread load bench
//! (`benches/zswap.rs`, "2 threads load 2T/1T", lz4, 2 CPUs; alternated
//! runs of both builds, 2 shared vCPUs) measured the row's median at
//! 1.81-1.84 with one list per node (single runs 1.66-1.95), against 1.85
//! for the decoder alone; with two sub-lists 1.92-1.94 (single runs
//! 1.79-1.98), where a build with no LRU at all gave 1.91. The price on
//! one CPU: 3 instructions more per load (10247 to 10250, callgrind) and 8
//! per store.
//!
//! When a cgroup goes offline its lists are spliced in front of its parent's
//! (each sub-list in front of the parent's same sub-list of the same node,
//! so the dead cgroup's entries are the next written back from each) and
//! its [`MemcgLru`] becomes a *redirect* to the parent: entries keep the
//! memcg id and sub-list they were added with (`ZswapEntry::lru_key`) and
//! every lookup follows the redirect to the live lists, so add and delete
//! always reach the sub-list the entry is on (Linux:
//! `memcg_reparent_list_lrus`). A redirect lives as long as entries are
//! keyed by its id (`nr_keyed`) and holds a reference to its cgroup
//! meanwhile, so the cgroup's id cannot be reused under it.
//!
//! Lock order inside this module: map lock (one CPU's for a reader, every
//! CPU's in CPU order for a writer) -> sub-list lock (all sub-list locks
//! are of the one list-lock class, `ZSWAP_LRU_LIST`); two sub-list locks
//! (reparenting only) child -> parent, the same sub-list of the same node.
//! No path holds two sub-list locks of one record: the walk and the counts
//! take one sub-list's lock at a time. An add to or a delete from the lists
//! of the record kept for the LRU's lifetime (root's: [`Lru::keep`]) takes
//! its sub-list lock alone.
//!
//! # Invariants
//!
//! - An entry is linked on at most one sub-list: the one its key (its
//!   memcg id and sub-list, `ZswapEntry::lru_key`, and its slab's node,
//!   `EntryCache::nid_of`) resolves to (following redirects), and only
//!   while that sub-list's lock is held is its link touched. Callers pass
//!   the node with the entry. Every record of an `Lru` has its `nr_sub`
//!   sub-lists per node, so a key names the same sub-list index in every
//!   record it may resolve to.
//! - `LruList::nr` is the number of entries linked on the sub-list; `head`
//!   and `tail` are its first and last entries' ids (0 when empty), and the
//!   entries' links chain them both ways. Every id on a sub-list is a live
//!   entry of the entry cache the `Lru`'s callers pass (one per zswap).
//! - A redirected `MemcgLru` has empty sub-lists, is never un-redirected,
//!   and redirects to a live `MemcgLru` (one hop).
//! - The linked entries whose key names a `MemcgLru` (plus its pins) are
//!   counted in its `nr_keyed`, except those of a live record on its own
//!   sub-lists: each sub-list counts those in `LruList::nr_own`, under its
//!   lock (no shared atomic on add and delete). Reparenting, with the map's
//!   write side and the child's sub-list locks held (one at a time), adds
//!   each child sub-list's `nr_own` to its `nr_keyed` as it splices it,
//!   and makes it a redirect before dropping the write side, so a
//!   redirect's `nr_keyed` counts every entry keyed by it.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr;

use intrusive_collections::{Bound, KeyAdapter, RBTree, RBTreeLink, intrusive_adapter};
use kbase::sync::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Mutex, Ordering, lock_class};
use kbase::{Error, Gfp, Result, try_box};
use memcg::MemcgRef;
use swapcache::SwpEntry;

use crate::brlock::BrLock;
use crate::cache::{EntryCache, EntryId};
use crate::entry::{LruLink, ZswapEntry};

/// One sub-list of one node of one cgroup (oldest at the head).
pub(crate) struct LruList {
    /// Id of the first entry (0: empty).
    head: u32,
    /// Id of the last entry (0: empty).
    tail: u32,
    nr: usize,
    /// Entries on this list keyed by the list's own (live) record: they are
    /// not in its `nr_keyed` (module invariant).
    nr_own: usize,
}

impl LruList {
    const fn new() -> LruList {
        LruList {
            head: 0,
            tail: 0,
            nr: 0,
            nr_own: 0,
        }
    }

    /// The entry with id `raw` on this list.
    ///
    /// # Safety
    ///
    /// `raw` is an id on this list (so a live entry of `cache`, module
    /// invariant), and the caller holds the list's lock.
    #[inline]
    unsafe fn at(cache: &EntryCache, raw: u32) -> Option<&ZswapEntry> {
        let id = EntryId::from_raw(raw)?;
        // SAFETY: the caller's contract: a live entry of `cache`, which
        // cannot be freed before it is unlinked under the lock we hold.
        unsafe { cache.entry(id).map(|p| p.as_ref()) }
    }

    /// Links `e` (id `id`, on no list) at the tail.
    ///
    /// # Safety
    ///
    /// The caller holds this list's lock, the list is the one `e`'s key
    /// resolves to, and `e` is a live entry of `cache` that is unlinked
    /// before it is freed.
    unsafe fn push_back(&mut self, cache: &EntryCache, e: &ZswapEntry, id: EntryId) {
        let id = id.get();
        // SAFETY: the caller's contract (list lock held; `tail` is on it).
        unsafe {
            e.set_lru_link(LruLink {
                prev: self.tail,
                next: 0,
            });
            match Self::at(cache, self.tail) {
                Some(t) => t.set_lru_link(LruLink {
                    next: id,
                    ..t.lru_link()
                }),
                None => self.head = id,
            }
        }
        self.tail = id;
        self.nr += 1;
    }

    /// Unlinks `e`, which is on this list.
    ///
    /// # Safety
    ///
    /// The caller holds this list's lock and `e` (of `cache`) is linked on
    /// it.
    #[inline]
    unsafe fn remove(&mut self, cache: &EntryCache, e: &ZswapEntry) {
        // SAFETY: the caller's contract; the neighbours are on this list.
        unsafe {
            let l = e.lru_link();
            match Self::at(cache, l.prev) {
                Some(p) => p.set_lru_link(LruLink {
                    next: l.next,
                    ..p.lru_link()
                }),
                None => self.head = l.next,
            }
            match Self::at(cache, l.next) {
                Some(n) => n.set_lru_link(LruLink {
                    prev: l.prev,
                    ..n.lru_link()
                }),
                None => self.tail = l.prev,
            }
            e.set_lru_link(LruLink::UNLINKED);
        }
        self.nr -= 1;
    }

    /// Moves every entry of `child` in front of this list's own, O(1)
    /// (Linux's `list_splice_init`); `child` is left empty.
    ///
    /// # Safety
    ///
    /// The caller holds both lists' locks; both hold entries of `cache`.
    unsafe fn splice_front(&mut self, cache: &EntryCache, child: &mut LruList) {
        if child.head == 0 {
            return;
        }
        // SAFETY: the caller's contract: `child.tail` is on `child`, our
        // head on this list, both locked.
        unsafe {
            if let Some(t) = Self::at(cache, child.tail) {
                t.set_lru_link(LruLink {
                    next: self.head,
                    ..t.lru_link()
                });
            }
            match Self::at(cache, self.head) {
                Some(h) => h.set_lru_link(LruLink {
                    prev: child.tail,
                    ..h.lru_link()
                }),
                None => self.tail = child.tail,
            }
        }
        self.head = child.head;
        self.nr += child.nr;
        *child = LruList::new();
    }
}

/// Most per-CPU sub-lists of one (memcg, node) list: what an entry's two
/// `meta` bits can name ([`ZswapEntry::lru_key`]).
pub(crate) const MAX_SUBLISTS: usize = crate::entry::LRU_SUBLISTS_MAX;

/// One per-CPU sub-list of a (memcg, node) list, in a cache line of its own
/// (Linux's `list_lru_node`, one list per node, is
/// `____cacheline_aligned_in_smp`): every add and delete writes the lock,
/// the head or tail and the counts, all in this one line, and nothing else
/// shares it, so adds and deletes on different sub-lists write no common
/// line.
#[repr(align(64))]
pub(crate) struct SubList {
    list: Mutex<LruList>,
}

/// The lruvec state of one node of one cgroup, and where its walk goes on.
/// Not on any add's or delete's path (a disk swap-in and the walker write
/// it).
pub(crate) struct NodeState {
    /// Linux's `zswap_lruvec_state.nr_disk_swapins`.
    nr_disk_swapins: AtomicU64,
    /// The sub-list whose head the next walk step looks at first (a hint:
    /// relaxed, concurrent walkers may both take the same turn).
    cursor: AtomicU32,
}

/// The lists of one memory cgroup (Linux: `list_lru_memcg`).
pub(crate) struct MemcgLru {
    id: u32,
    /// Keeps the memcg (and so its id) from being freed and reused while
    /// entries are keyed by its id; what charged entries keyed by it are
    /// uncharged through ([`Lru::del_with`]).
    memcg: Option<MemcgRef>,
    /// 0 while live; else the live memcg id whose lists took this one's
    /// entries (never another redirect: chains are collapsed on reparent).
    redirect: AtomicU32,
    /// Pins, plus entries whose key names this memcg other than those its
    /// own lists count in `nr_own` while it is live (module invariant).
    nr_keyed: AtomicUsize,
    /// Sub-lists per node (1..=[`MAX_SUBLISTS`], the `Lru`'s).
    nr_sub: usize,
    /// Node `nid`'s sub-list `s` is `subs[nid * nr_sub + s]`.
    subs: Vec<SubList>,
    /// Per node.
    nodes: Vec<NodeState>,
    link: RBTreeLink,
}

// SAFETY: `link` (Cells) is only touched by the RBTree, which lives behind
// the map lock and is only modified under its write side; all other fields are
// thread-safe (locks and atomics).
unsafe impl Sync for MemcgLru {}
// SAFETY: as above; owned data only.
unsafe impl Send for MemcgLru {}

impl MemcgLru {
    /// Sub-list `s` of node `nid` (`s` below `nr_sub`, as
    /// [`Lru::sublist_of`] chooses it; `None` for a node past the record's).
    ///
    /// No check of `s` on this path of every add and delete: an `s` out of
    /// range (a bug) would name another node's sub-list, the same one for
    /// the entry's add and delete, so the lists stay consistent.
    #[inline(always)]
    fn sub(&self, nid: usize, s: usize) -> Option<&SubList> {
        self.subs.get(nid.wrapping_mul(self.nr_sub).wrapping_add(s))
    }

    /// Node `nid`'s sub-lists, sub-list 0 first.
    fn node_subs(&self, nid: usize) -> &[SubList] {
        let start = nid.saturating_mul(self.nr_sub);
        self.subs
            .get(start..start.saturating_add(self.nr_sub))
            .unwrap_or(&[])
    }

    /// Links `entry` (id `id` in `cache`) at the tail of this record's
    /// sub-list of node `nid` the entry names ([`ZswapEntry::lru_key`]),
    /// unless it is already on a list, and counts it: in the sub-list's
    /// `nr_own` when `keyed` is this record, else in `keyed`'s `nr_keyed`
    /// (module invariant). Shared by [`Lru::add`]'s two paths.
    ///
    /// # Safety
    ///
    /// `keyed` is the record `entry`'s key (`lru_key()`) names and `self`
    /// the live record it resolves to (`keyed` itself when it is live); both
    /// stay alive for the call (the map lock is held, or `self` is the kept
    /// record). `nid` is the entry's node and `s` its sub-list
    /// ([`ZswapEntry::lru_key`]). `entry` is a live entry of `cache` that
    /// is unlinked before it is freed.
    unsafe fn link_tail(
        &self,
        keyed: &MemcgLru,
        cache: &EntryCache,
        entry: &ZswapEntry,
        id: EntryId,
        nid: usize,
        s: usize,
    ) {
        let Some(sub) = self.sub(nid, s) else {
            return;
        };
        let mut l = sub.list.lock();
        // SAFETY: we hold the lock of the list the entry's key resolves to
        // (the caller's contract).
        if unsafe { entry.lru_link() } != LruLink::UNLINKED {
            return;
        }
        // SAFETY: the lock is held, the list is the entry's, and the entry
        // is live and unlinked before it is freed (the caller's contract),
        // so the list never holds a dangling id.
        unsafe { l.push_back(cache, entry, id) };
        if ptr::eq(self, keyed) {
            // A live record's own list: counted under its lock (module
            // invariant).
            l.nr_own += 1;
        } else {
            keyed.nr_keyed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Unlinks `entry` (of `cache`) from this record's sub-list of node
    /// `nid` it names (whichever CPU runs this) if it is linked, and uncounts it as [`MemcgLru::link_tail`] counted
    /// it. Returns whether it was the last entry keyed by the redirect
    /// `keyed` (the caller then reaps it; never for a live `keyed`). Shared
    /// by [`Lru::del`]'s two paths.
    ///
    /// # Safety
    ///
    /// As for [`MemcgLru::link_tail`]: `keyed` is the record `entry`'s key
    /// names and `self` the live record it resolves to, both alive for the
    /// call; `nid` is the entry's node and `s` its sub-list; `entry` is an
    /// entry of `cache`.
    #[inline(always)]
    unsafe fn unlink(
        &self,
        keyed: &MemcgLru,
        cache: &EntryCache,
        entry: &ZswapEntry,
        nid: usize,
        s: usize,
    ) -> bool {
        let Some(sub) = self.sub(nid, s) else {
            return false;
        };
        let mut l = sub.list.lock();
        // SAFETY: we hold the lock of the list the entry's key resolves to
        // (the caller's contract).
        if unsafe { entry.lru_link() } == LruLink::UNLINKED {
            return false;
        }
        // SAFETY: by the module invariant a linked entry is linked on the
        // list its key resolves to, which is `l` (the caller's contract),
        // and we hold its lock.
        unsafe { l.remove(cache, entry) };
        if ptr::eq(self, keyed) {
            // Live (the map lock or `Lru::kept` keeps it so): never reaped.
            l.nr_own -= 1;
            false
        } else {
            keyed.nr_keyed.fetch_sub(1, Ordering::Relaxed) == 1
        }
    }
}

intrusive_adapter!(MemcgLruAdapter = Box<MemcgLru>: MemcgLru { link => RBTreeLink });

impl<'a> KeyAdapter<'a> for MemcgLruAdapter {
    type Key = u32;
    fn get_key(&self, x: &'a MemcgLru) -> u32 {
        x.id
    }
}

/// What the walker found at the head of a list.
pub(crate) enum Isolate {
    /// The list is empty.
    Empty,
    /// The head had its referenced bit set: cleared and rotated (second chance).
    Rotated,
    /// The head was rotated to the tail; its slot and identity were copied.
    Candidate {
        /// The slot to write back.
        swp: SwpEntry,
        /// The entry's pool id and handle (`ZswapEntry::identity`): its
        /// identity for re-verification.
        handle: u64,
    },
}

/// The walk step on one sub-list: its head gets a second chance or is
/// rotated to the tail and copied out ([`Lru::isolate_head`]).
fn isolate_sub(cache: &EntryCache, sub: &SubList) -> Isolate {
    let mut l = sub.list.lock();
    let head = l.head;
    // SAFETY: the head is on this sub-list, whose lock we hold.
    let Some(e) = (unsafe { LruList::at(cache, head) }) else {
        return Isolate::Empty;
    };
    let Some(id) = EntryId::from_raw(head) else {
        return Isolate::Empty;
    };
    let (referenced, swp, handle) = (e.take_referenced(), e.swpentry(), e.identity());
    // Rotated to the tail before the lock is dropped.
    // SAFETY: `e` is on this sub-list (locked); it stays live (module
    // invariant) and goes back on the same sub-list, the one its key
    // resolves to.
    unsafe {
        l.remove(cache, e);
        l.push_back(cache, e, id);
    }
    if referenced {
        Isolate::Rotated
    } else {
        Isolate::Candidate { swp, handle }
    }
}

/// The memcg map of the LRU.
type Map = RBTree<MemcgLruAdapter>;

/// The memcg map behind a big-reader lock: a reader (add, delete, pin,
/// unpin: every store, load and invalidate) holds its CPU's lock; a writer
/// (a new record, reparenting, reaping a redirect) holds every CPU's lock
/// (class `ZSWAP_LRU_MAP`).
type MapLock = BrLock<Map>;

/// The global zswap LRU.
pub(crate) struct Lru {
    map: MapLock,
    nr_nodes: usize,
    /// Per-CPU sub-lists of every (memcg, node) list: `min(nr_cpus,`
    /// [`MAX_SUBLISTS`]`)`, at least 1, fixed at creation. CPU `c`'s stores
    /// go on sub-list `c % nr_sub` ([`Lru::sublist_of`]).
    nr_sub: usize,
    /// The record kept for the LRU's lifetime ([`Lru::keep`]): null until
    /// then.
    ///
    /// # Invariants
    ///
    /// Null, or a record of `map` that holds a pin never dropped and is
    /// never reparented (so never removed and never a redirect) while the
    /// `Lru` lives; set at most once.
    kept: AtomicPtr<MemcgLru>,
}

/// The live lists for `id`: its own, or those it redirects to.
fn resolve(map: &RBTree<MemcgLruAdapter>, id: u32) -> Option<&MemcgLru> {
    resolve_from(map, map.find(&id).get()?)
}

/// The live lists for the record `m` of `map`: `m` itself while it is live
/// (no second lookup), else the record it redirects to.
fn resolve_from<'a>(map: &'a RBTree<MemcgLruAdapter>, m: &'a MemcgLru) -> Option<&'a MemcgLru> {
    match m.redirect.load(Ordering::Relaxed) {
        0 => Some(m),
        r => map.find(&r).get(),
    }
}

impl Lru {
    /// An empty LRU for `nr_nodes` NUMA nodes (at least 1) and `nr_cpus`
    /// CPUs (one map lock each; `min(nr_cpus, MAX_SUBLISTS)` sub-lists per
    /// (memcg, node) list, one with one CPU). `ENOMEM`.
    pub(crate) fn new(nr_nodes: usize, nr_cpus: usize) -> Result<Lru> {
        Ok(Lru {
            map: BrLock::new(
                nr_cpus,
                &lock_class::ZSWAP_LRU_MAP,
                RBTree::new(MemcgLruAdapter::new()),
            )?,
            nr_nodes: nr_nodes.clamp(1, 256),
            nr_sub: nr_cpus.clamp(1, MAX_SUBLISTS),
            // INVARIANT: null.
            kept: AtomicPtr::new(ptr::null_mut()),
        })
    }

    /// Keeps `memcg_id`'s record for the LRU's lifetime, so [`Lru::add`]
    /// reaches its lists with no map lock and no lookup. The caller holds a
    /// pin on it that it never drops, and the id is one that is never
    /// reparented: root's, or 0 without cgroups (root has no parent;
    /// [`Lru::reparent`] of the kept id does nothing). Only the first call
    /// keeps a record.
    pub(crate) fn keep(&self, cpu: usize, memcg_id: u32) {
        let rec = self.map.read(cpu, |map| {
            map.find(&memcg_id)
                .get()
                .map(|m| ptr::from_ref(m).cast_mut())
        });
        if let Some(p) = rec {
            // INVARIANT: a record of `map`, pinned for good by the caller
            // and never reparented (this function's contract); set once.
            let _ =
                self.kept
                    .compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// The kept record, if it is `memcg_id`'s.
    #[inline]
    fn kept(&self, memcg_id: u32) -> Option<&MemcgLru> {
        let p = self.kept.load(Ordering::Acquire);
        // SAFETY: by the field's invariant a non-null `kept` is a record of
        // the map that is never removed while the `Lru` lives (it is only
        // freed with the map), and `&self` keeps the `Lru` alive for the
        // borrow. Its `id` and `nodes` never change; its tree link, which
        // map writers change, is not read here.
        let m = unsafe { p.as_ref() }?;
        (m.id == memcg_id).then_some(m)
    }

    /// The number of nodes.
    pub(crate) fn nr_nodes(&self) -> usize {
        self.nr_nodes
    }

    /// The sub-list an entry stored on CPU `cpu` goes on (store records it
    /// in the entry before publishing it: [`ZswapEntry::set_lru_sublist`]).
    #[inline]
    pub(crate) fn sublist_of(&self, cpu: usize) -> usize {
        if self.nr_sub == 1 {
            0
        } else {
            cpu % self.nr_sub
        }
    }

    /// Makes sure `memcg_id` (or what it redirects to) has lists
    /// (Linux: `memcg_list_lru_alloc`). Allocates with no lock held. Used
    /// for a reparenting target; stores go through [`Lru::pin`].
    fn ensure(&self, memcg_id: u32, memcg: Option<&MemcgRef>, gfp: Gfp) -> Result<()> {
        if self.map.read(0, |map| map.find(&memcg_id).get().is_some()) {
            return Ok(());
        }
        let m = self.new_record(memcg_id, memcg, 0, gfp)?;
        let spare = self.map.write(|map| {
            if map.find(&memcg_id).get().is_none() {
                map.insert(m);
                None
            } else {
                Some(m)
            }
        });
        drop(spare);
        Ok(())
    }

    fn new_record(
        &self,
        memcg_id: u32,
        memcg: Option<&MemcgRef>,
        nr_keyed: usize,
        gfp: Gfp,
    ) -> Result<Box<MemcgLru>> {
        let mut nodes = Vec::new();
        nodes.try_reserve_exact(self.nr_nodes)?;
        for _ in 0..self.nr_nodes {
            nodes.push(NodeState {
                nr_disk_swapins: AtomicU64::new(0),
                cursor: AtomicU32::new(0),
            });
        }
        let nr_subs = self.nr_nodes * self.nr_sub;
        let mut subs = Vec::new();
        subs.try_reserve_exact(nr_subs)?;
        for _ in 0..nr_subs {
            // Every sub-list lock is of the one list-lock class.
            subs.push(SubList {
                list: Mutex::new_class(LruList::new(), &lock_class::ZSWAP_LRU_LIST),
            });
        }
        try_box(
            MemcgLru {
                id: memcg_id,
                memcg: memcg.cloned(),
                redirect: AtomicU32::new(0),
                nr_keyed: AtomicUsize::new(nr_keyed),
                nr_sub: self.nr_sub,
                subs,
                nodes,
                link: RBTreeLink::new(),
            },
            gfp,
        )
    }

    /// Makes sure `memcg_id` has a record (live lists, or a redirect to
    /// them) and pins it until [`Lru::unpin`]: while pinned, reparenting
    /// keeps the record (as a redirect), so every [`Lru::add`] keyed by
    /// `memcg_id` reaches a list. Allocates with no lock held. `cpu` is the
    /// caller's CPU (whose map lock it takes).
    ///
    /// `EAGAIN` if `memcg_id` has no record and `memcg` is offline: its
    /// reparenting may already have run and would never see a record made
    /// now (Linux's `memcg_list_lru_alloc` checks the same under the lock);
    /// the caller uses the parent instead. `ENOMEM`.
    pub(crate) fn pin(
        &self,
        cpu: usize,
        memcg_id: u32,
        memcg: Option<&MemcgRef>,
        gfp: Gfp,
    ) -> Result<()> {
        let pinned = self.map.read(cpu, |map| match map.find(&memcg_id).get() {
            Some(m) => {
                // Under the map lock: reparent and reap, which drop unkeyed
                // records, hold it for write.
                m.nr_keyed.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        });
        if pinned {
            return Ok(());
        }
        if memcg.is_some_and(|m| !m.is_online()) {
            return Err(Error::EAGAIN);
        }
        let rec = self.new_record(memcg_id, memcg, 1, gfp)?;
        let (spare, r) = self.map.write(|map| {
            if let Some(m) = map.find(&memcg_id).get() {
                m.nr_keyed.fetch_add(1, Ordering::Relaxed);
                (Some(rec), Ok(()))
            } else if memcg.is_some_and(|m| !m.is_online()) {
                // Checked again under the lock: `memcg_offline` marks the
                // cgroup offline before it takes this lock to reparent, so
                // either it sees the record inserted here or we see it
                // offline.
                (Some(rec), Err(Error::EAGAIN))
            } else {
                map.insert(rec);
                (None, Ok(()))
            }
        });
        drop(spare);
        r
    }

    /// Drops a pin taken by [`Lru::pin`] (on CPU `cpu`'s map lock). The last
    /// key of an offline cgroup's redirect frees it.
    pub(crate) fn unpin(&self, cpu: usize, memcg_id: u32) {
        let reap = self.map.read(cpu, |map| {
            map.find(&memcg_id).get().is_some_and(|m| {
                m.nr_keyed.fetch_sub(1, Ordering::Relaxed) == 1
                    && m.redirect.load(Ordering::Relaxed) != 0
            })
        });
        if reap {
            self.reap(memcg_id);
        }
    }

    /// Adds `entry` at the tail of the list its key (`lru_key()`, node
    /// `nid`: its slab's) resolves to, under CPU `cpu`'s map lock. The
    /// caller holds a pin on that memcg ([`Lru::pin`]), so the lists exist.
    /// `id` is the entry's id in `cache`, the cache of every entry of this
    /// LRU; the entry is live (the caller owns or publishes it) and is
    /// unlinked ([`Lru::del`]) before it is freed.
    pub(crate) fn add(
        &self,
        cpu: usize,
        cache: &EntryCache,
        entry: &ZswapEntry,
        id: EntryId,
        nid: usize,
    ) {
        let (key, s) = entry.lru_key();
        if let Some(m) = self.kept(key) {
            // A kept record is live for good: its own lists, no map lock.
            // SAFETY: `m` is the record the entry's key names and, never a
            // redirect, the one it resolves to; `kept` keeps it alive while
            // `&self` lives. The entry is live and unlinked before it is
            // freed (this function's contract).
            unsafe { m.link_tail(m, cache, entry, id, nid, s) };
            return;
        }
        self.map.read(cpu, |map| {
            let Some(keyed) = map.find(&key).get() else {
                return;
            };
            let Some(m) = resolve_from(map, keyed) else {
                return;
            };
            // SAFETY: `keyed` is the record the entry's key names and `m` the
            // live one it resolves to, both kept alive by the map lock we
            // hold; the entry is live and unlinked before it is freed (this
            // function's contract).
            unsafe { m.link_tail(keyed, cache, entry, id, nid, s) };
        })
    }

    /// Unlinks `entry` (of node `nid`, its slab's) from its list, if it is
    /// on one, under CPU `cpu`'s map lock. The last entry keyed by an
    /// offline cgroup's id frees its redirect (and cgroup reference). An
    /// entry keyed by the kept record ([`Lru::keep`]) is unlinked under its
    /// list lock alone, as [`Lru::add`] links it. (zswap's free path uses
    /// [`Lru::del_with`], which uncharges too.)
    #[cfg(all(test, not(loom)))]
    pub(crate) fn del(&self, cpu: usize, cache: &EntryCache, entry: &ZswapEntry, nid: usize) {
        self.del_with(cpu, cache, entry, nid, |_| {});
    }

    /// [`Lru::del`], and for a charged entry (`ZswapEntry::is_charged`)
    /// `charged` runs on the cgroup of the record the entry's key names,
    /// under the map lock (after the sub-list lock is dropped), before that
    /// record can go: the cgroup the entry's bytes are uncharged through
    /// (its nearest online ancestor takes them, as the objcg Linux keeps
    /// would). The record holds the cgroup as long as an entry is keyed by
    /// it, so a charged entry's record always has one (its store pinned the
    /// record with the cgroup it charged). `charged` may take the memcg
    /// crate's locks (they nest inside every zswap lock: the memcg crate
    /// calls no zswap code under them), no zswap lock.
    #[inline]
    pub(crate) fn del_with(
        &self,
        cpu: usize,
        cache: &EntryCache,
        entry: &ZswapEntry,
        nid: usize,
        charged: impl FnOnce(&MemcgRef),
    ) {
        let (key, s) = entry.lru_key();
        let is_charged = entry.is_charged();
        if let Some(m) = self.kept(key) {
            // A kept record is live for good: its own lists, no map lock; it
            // is never reaped.
            // SAFETY: `m` is the record the entry's key names and, never a
            // redirect, the one it resolves to; `kept` keeps it alive while
            // `&self` lives. The entry is of `cache` (this function's
            // contract).
            unsafe { m.unlink(m, cache, entry, nid, s) };
            if let (true, Some(memcg)) = (is_charged, m.memcg.as_ref()) {
                charged(memcg);
            }
            return;
        }
        let reap = self.map.read(cpu, |map| {
            let Some(keyed) = map.find(&key).get() else {
                return false;
            };
            let reap = match resolve_from(map, keyed) {
                // SAFETY: `keyed` is the record the entry's key names and `m`
                // the live one it resolves to, both kept alive by the map
                // lock we hold; the entry is of `cache` (this function's
                // contract).
                Some(m) => unsafe { m.unlink(keyed, cache, entry, nid, s) },
                None => false,
            };
            if let (true, Some(memcg)) = (is_charged, keyed.memcg.as_ref()) {
                charged(memcg);
            }
            reap
        });
        if reap {
            self.reap(key);
        }
    }

    /// Frees the redirect of `id` if no entry is keyed by it any more.
    fn reap(&self, id: u32) {
        let removed = self.map.write(|map| {
            let dead = map.find(&id).get().is_some_and(|m| {
                m.redirect.load(Ordering::Relaxed) != 0 && m.nr_keyed.load(Ordering::Relaxed) == 0
            });
            if dead {
                map.find_mut(&id).remove()
            } else {
                None
            }
        });
        // Drops the cgroup reference with no lock held.
        drop(removed);
    }

    /// Looks at the head of one sub-list of the (memcg, node) list
    /// (Linux's `shrink_memcg_cb` up to dropping the lock): a referenced
    /// entry gets a second chance; otherwise the entry is rotated to its
    /// sub-list's tail *before* the lock is dropped and its slot and pool
    /// handle are copied out.
    ///
    /// The sub-lists take turns: each call starts at the node's cursor,
    /// skips empty sub-lists, and leaves the cursor after the sub-list it
    /// took a head from; [`Isolate::Empty`] only when every sub-list was
    /// empty as it was looked at. One sub-list lock at a time. With one
    /// sub-list this is Linux's walk of its one list.
    pub(crate) fn isolate_head(&self, cache: &EntryCache, memcg_id: u32, nid: usize) -> Isolate {
        self.map.read(0, |map| {
            let Some(m) = resolve(map, memcg_id) else {
                return Isolate::Empty;
            };
            if m.id != memcg_id {
                // Offline cgroup: its entries live on the parent's lists now.
                return Isolate::Empty;
            }
            let (Some(node), subs) = (m.nodes.get(nid), m.node_subs(nid)) else {
                return Isolate::Empty;
            };
            let nr = subs.len();
            if nr == 1 {
                // Linux's one list: no cursor.
                return isolate_sub(cache, &subs[0]);
            }
            let start = node.cursor.load(Ordering::Relaxed) as usize;
            for i in 0..nr {
                let s = (start + i) % nr;
                let r = isolate_sub(cache, &subs[s]);
                if !matches!(r, Isolate::Empty) {
                    node.cursor.store(((s + 1) % nr) as u32, Ordering::Relaxed);
                    return r;
                }
            }
            Isolate::Empty
        })
    }

    /// Entries on the (memcg, node) list, all its sub-lists
    /// (`list_lru_count_one`). Each sub-list's lock in turn, one at a time.
    pub(crate) fn count_one(&self, memcg_id: u32, nid: usize) -> usize {
        self.map.read(0, |map| match resolve(map, memcg_id) {
            Some(m) if m.id == memcg_id => {
                m.node_subs(nid).iter().map(|sub| sub.list.lock().nr).sum()
            }
            _ => 0,
        })
    }

    /// Entries on all of the memcg's lists.
    pub(crate) fn count_memcg(&self, memcg_id: u32) -> usize {
        (0..self.nr_nodes)
            .map(|n| self.count_one(memcg_id, n))
            .sum()
    }

    /// Bumps the lruvec's `nr_disk_swapins` (Linux: `zswap_folio_swapin`).
    pub(crate) fn note_disk_swapin(&self, memcg_id: u32, nid: usize) {
        self.map.read(0, |map| {
            if let Some(node) = resolve(map, memcg_id).and_then(|m| m.nodes.get(nid)) {
                node.nr_disk_swapins.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    /// Consumes up to `nr_freeable` of the lruvec's disk swap-ins and returns
    /// how many were consumed (the dynamic shrinker's swap-in protection).
    pub(crate) fn consume_disk_swapins(&self, memcg_id: u32, nid: usize, nr_freeable: u64) -> u64 {
        self.map.read(0, |map| {
            let Some(node) = resolve(map, memcg_id).and_then(|m| m.nodes.get(nid)) else {
                return 0;
            };
            let mut cur = node.nr_disk_swapins.load(Ordering::Relaxed);
            loop {
                let remain = cur.saturating_sub(nr_freeable);
                match node.nr_disk_swapins.compare_exchange(
                    cur,
                    remain,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return cur - remain,
                    Err(now) => cur = now,
                }
            }
        })
    }

    /// Moves every entry of `child` onto `parent`'s lists, at their heads, and
    /// makes `child` a redirect to `parent` (Linux:
    /// `memcg_reparent_list_lrus`).
    pub(crate) fn reparent(
        &self,
        cache: &EntryCache,
        child: u32,
        parent: &MemcgRef,
        gfp: Gfp,
    ) -> Result<()> {
        let parent_id = parent.id();
        if child == parent_id || self.kept(child).is_some() {
            return Ok(());
        }
        self.ensure(parent_id, Some(parent), gfp)?;
        let removed = self.map.write(|map| {
            let c = map.find(&child).get()?;
            if c.redirect.load(Ordering::Relaxed) != 0 {
                return None;
            }
            let p = resolve(map, parent_id)?;
            if p.id == c.id {
                return None;
            }
            // Every record has the same sub-lists (the `Lru`'s `nr_sub`):
            // child sub-list `i` of node `n` goes onto the parent's sub-list
            // `i` of node `n`, the one its entries' keys (which name their
            // sub-list) resolve to from now on. Two locks at a time: the
            // child's, then the parent's (never two of one record).
            for (cs, ps) in c.subs.iter().zip(p.subs.iter()) {
                let mut cl = cs.list.lock();
                let mut pl = ps.list.lock();
                // The child's own entries leave its lists: from now on its
                // `nr_keyed` counts them (module invariant).
                c.nr_keyed.fetch_add(cl.nr_own, Ordering::Relaxed);
                // In front of the parent's own entries, as Linux's
                // `list_splice_init(&src->list, &dst->list)`: the dead
                // child's entries are the next written back from this
                // sub-list. From now on their keys resolve to the parent's
                // lists.
                // SAFETY: both locks are held; both lists hold entries of
                // `cache`.
                unsafe { pl.splice_front(cache, &mut cl) };
            }
            for (cn, pn) in c.nodes.iter().zip(p.nodes.iter()) {
                let swapins = cn.nr_disk_swapins.swap(0, Ordering::Relaxed);
                pn.nr_disk_swapins.fetch_add(swapins, Ordering::Relaxed);
            }
            let target = p.id;
            c.redirect.store(target, Ordering::Relaxed);
            // Collapse chains: whatever redirected to `child` now goes to
            // `target` directly.
            let mut cur = map.lower_bound(Bound::Unbounded);
            while let Some(m) = cur.get() {
                if m.redirect.load(Ordering::Relaxed) == child {
                    m.redirect.store(target, Ordering::Relaxed);
                }
                cur.move_next();
            }
            let unused = map
                .find(&child)
                .get()
                .is_some_and(|m| m.nr_keyed.load(Ordering::Relaxed) == 0);
            if unused {
                map.find_mut(&child).remove()
            } else {
                None
            }
        });
        drop(removed);
        Ok(())
    }

    /// Live and redirect records (diagnostics, tests).
    pub(crate) fn nr_records(&self) -> usize {
        self.map.read(0, |map| map.iter().count())
    }

    /// Total entries on every list (diagnostics).
    pub(crate) fn total(&self) -> usize {
        self.map.read(0, |map| {
            let mut c = map.lower_bound(Bound::Unbounded);
            let mut n = 0;
            while let Some(m) = c.get() {
                n += m.subs.iter().map(|x| x.list.lock().nr).sum::<usize>();
                c.move_next();
            }
            n
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::entry::{EntryPtr, OwnedEntry};
    use memcg::MemcgTree;

    fn entry(off: u64, memcg: u32) -> EntryPtr {
        let mut e = ZswapEntry::new(SwpEntry::new(0, off).unwrap(), memcg).unwrap();
        e.set_object(zpool::Handle::from_raw(off + 1), 100, 1)
            .unwrap();
        e.set_referenced(off.is_multiple_of(2));
        EntryPtr::new_in(
            crate::cache::test_cache().alloc(0, 0, Gfp::KERNEL).unwrap(),
            e,
        )
    }

    fn tc() -> &'static EntryCache {
        crate::cache::test_cache()
    }

    fn get(p: EntryPtr) -> &'static ZswapEntry {
        // SAFETY: test entries live until `free` below.
        unsafe { p.ptr.as_ref() }
    }

    fn free(lru: &Lru, p: EntryPtr) {
        lru.del(0, tc(), get(p), 0);
        // SAFETY: the test owns the entry; it is unlinked above.
        unsafe { OwnedEntry::from_erased(p).free_memory(crate::cache::test_cache()) };
    }

    /// The offsets on (memcg, node 0) from head to tail, walked by the
    /// walker's rotation (each entry is rotated once).
    fn order(lru: &Lru, memcg: u32) -> alloc::vec::Vec<u64> {
        (0..lru.count_one(memcg, 0))
            .map(|_| match lru.isolate_head(tc(), memcg, 0) {
                Isolate::Candidate { swp, .. } => swp.offset(),
                _ => panic!("referenced entry in an order walk"),
            })
            .collect()
    }

    #[test]
    fn unlinking_head_middle_and_tail_keeps_the_rest_in_order() {
        let lru = Lru::new(1, 1).unwrap();
        lru.ensure(9, None, Gfp::KERNEL).unwrap();
        // Odd offsets: not referenced, so every head is a candidate.
        let es: alloc::vec::Vec<_> = [1, 3, 5, 7, 9].iter().map(|&o| entry(o, 9)).collect();
        for e in &es {
            lru.add(0, tc(), get(*e), e.id, 0);
        }
        assert_eq!(order(&lru, 9), [1, 3, 5, 7, 9]);
        lru.del(0, tc(), get(es[2]), 0);
        assert_eq!(order(&lru, 9), [1, 3, 7, 9]);
        lru.del(0, tc(), get(es[0]), 0);
        lru.del(0, tc(), get(es[4]), 0);
        assert_eq!(order(&lru, 9), [3, 7]);
        // A second del of an unlinked entry changes nothing.
        lru.del(0, tc(), get(es[4]), 0);
        assert_eq!(lru.count_one(9, 0), 2);
        for i in [2, 0, 4] {
            // SAFETY: the test owns the entry; it is unlinked above.
            unsafe { OwnedEntry::from_erased(es[i]).free_memory(tc()) };
        }
        free(&lru, es[1]);
        free(&lru, es[3]);
        assert_eq!(lru.total(), 0);
        assert!(matches!(lru.isolate_head(tc(), 9, 0), Isolate::Empty));
    }

    /// Deletes from the kept record's lists (list lock alone) unlink the
    /// right entries, whether they were added before the record was kept
    /// (through the map) or after; other records' entries still go through
    /// the map.
    #[test]
    fn del_from_the_kept_records_lists() {
        let lru = Lru::new(1, 1).unwrap();
        lru.ensure(0, None, Gfp::KERNEL).unwrap();
        lru.ensure(9, None, Gfp::KERNEL).unwrap();
        // Odd offsets: not referenced, so every head is a candidate.
        let es: alloc::vec::Vec<_> = [1, 3, 5, 7, 9].iter().map(|&o| entry(o, 0)).collect();
        let other = entry(11, 9);
        lru.add(0, tc(), get(es[0]), es[0].id, 0);
        lru.add(0, tc(), get(es[1]), es[1].id, 0);
        lru.keep(0, 0);
        assert!(lru.kept(0).is_some() && lru.kept(9).is_none());
        for e in &es[2..] {
            lru.add(0, tc(), get(*e), e.id, 0);
        }
        lru.add(0, tc(), get(other), other.id, 0);
        assert_eq!(order(&lru, 0), [1, 3, 5, 7, 9]);
        lru.del(0, tc(), get(es[2]), 0);
        assert_eq!(order(&lru, 0), [1, 3, 7, 9]);
        lru.del(0, tc(), get(es[0]), 0);
        lru.del(0, tc(), get(es[4]), 0);
        assert_eq!(order(&lru, 0), [3, 7]);
        // A second del of an unlinked entry changes nothing.
        lru.del(0, tc(), get(es[4]), 0);
        assert_eq!(lru.count_one(0, 0), 2);
        assert_eq!(lru.count_one(9, 0), 1);
        for i in [2, 0, 4] {
            // SAFETY: the test owns the entry; it is unlinked above.
            unsafe { OwnedEntry::from_erased(es[i]).free_memory(tc()) };
        }
        free(&lru, es[1]);
        free(&lru, es[3]);
        free(&lru, other);
        assert_eq!(lru.total(), 0);
        assert!(matches!(lru.isolate_head(tc(), 0, 0), Isolate::Empty));
        assert_eq!(lru.nr_records(), 2, "the kept record stays");
    }

    #[test]
    fn second_chance_rotation_and_reparenting() {
        let tree = MemcgTree::new(Gfp::KERNEL).unwrap();
        let parent = tree.create("p", Gfp::KERNEL).unwrap();
        let child = tree.create("p/c", Gfp::KERNEL).unwrap();
        let lru = Lru::new(1, 1).unwrap();
        lru.ensure(child.id(), Some(&child), Gfp::KERNEL).unwrap();
        let es: alloc::vec::Vec<_> = (0..4).map(|i| entry(i, child.id())).collect();
        for e in &es {
            lru.add(0, tc(), get(*e), e.id, 0);
        }
        assert_eq!(lru.count_one(child.id(), 0), 4);
        // Head (offset 0) is referenced: rotated; then offset 1 is a candidate.
        assert!(matches!(
            lru.isolate_head(tc(), child.id(), 0),
            Isolate::Rotated
        ));
        match lru.isolate_head(tc(), child.id(), 0) {
            Isolate::Candidate { swp, handle } => {
                assert_eq!(swp.offset(), 1);
                assert_eq!(handle, get(es[1]).identity());
            }
            _ => panic!("expected a candidate"),
        }
        tree.offline("p/c").unwrap();
        lru.reparent(tc(), child.id(), &parent, Gfp::KERNEL)
            .unwrap();
        assert_eq!(lru.count_one(child.id(), 0), 0);
        assert_eq!(lru.count_one(parent.id(), 0), 4);
        assert!(matches!(
            lru.isolate_head(tc(), child.id(), 0),
            Isolate::Empty
        ));
        assert_eq!(lru.nr_records(), 2);
        // Entries keyed by the dead child still find their list.
        for e in es {
            free(&lru, e);
        }
        assert_eq!(lru.total(), 0);
        assert_eq!(lru.nr_records(), 1, "the redirect went with its last entry");
    }

    /// Linux splices a dead child's list in front of the parent's
    /// (`list_splice_init(&src->list, &dst->list)`): the child's entries are
    /// written back before the parent's own, even older, entries.
    #[test]
    fn reparenting_puts_the_childs_entries_at_the_parents_head() {
        let tree = MemcgTree::new(Gfp::KERNEL).unwrap();
        let parent = tree.create("p", Gfp::KERNEL).unwrap();
        let child = tree.create("p/c", Gfp::KERNEL).unwrap();
        let lru = Lru::new(1, 1).unwrap();
        lru.ensure(parent.id(), Some(&parent), Gfp::KERNEL).unwrap();
        lru.ensure(child.id(), Some(&child), Gfp::KERNEL).unwrap();
        // Odd offsets: not referenced, so each is a candidate at once.
        let own: alloc::vec::Vec<_> = [1, 3].iter().map(|&o| entry(o, parent.id())).collect();
        let moved: alloc::vec::Vec<_> = [5, 7].iter().map(|&o| entry(o, child.id())).collect();
        for e in own.iter().chain(moved.iter()) {
            lru.add(0, tc(), get(*e), e.id, 0);
        }
        tree.offline("p/c").unwrap();
        lru.reparent(tc(), child.id(), &parent, Gfp::KERNEL)
            .unwrap();
        let order: alloc::vec::Vec<u64> = (0..4)
            .map(|_| match lru.isolate_head(tc(), parent.id(), 0) {
                Isolate::Candidate { swp, .. } => swp.offset(),
                _ => panic!("expected a candidate"),
            })
            .collect();
        assert_eq!(order, [5, 7, 1, 3], "the child's entries come first");
        for e in own.into_iter().chain(moved) {
            free(&lru, e);
        }
        assert_eq!(lru.total(), 0);
    }

    /// Store read the objcg's memcg while online; the cgroup then went
    /// offline and its reparenting found no record. The store must not
    /// create a live record for the dead cgroup (never reparented, skipped by
    /// the shrinker, leaked with its cgroup reference).
    #[test]
    fn pin_refuses_a_record_for_a_cgroup_offlined_before_it() {
        let tree = MemcgTree::new(Gfp::KERNEL).unwrap();
        let parent = tree.create("p", Gfp::KERNEL).unwrap();
        let child = tree.create("p/c", Gfp::KERNEL).unwrap();
        let lru = Lru::new(1, 1).unwrap();
        tree.offline("p/c").unwrap();
        lru.reparent(tc(), child.id(), &parent, Gfp::KERNEL)
            .unwrap();
        let before = lru.nr_records();
        assert_eq!(
            lru.pin(0, child.id(), Some(&child), Gfp::KERNEL),
            Err(Error::EAGAIN)
        );
        assert_eq!(lru.nr_records(), before, "no record for the dead cgroup");
        // The store falls back to the parent, whose lists take the entry.
        lru.pin(0, parent.id(), Some(&parent), Gfp::KERNEL).unwrap();
        let e = entry(1, parent.id());
        lru.add(0, tc(), get(e), e.id, 0);
        lru.unpin(0, parent.id());
        assert_eq!(lru.count_one(parent.id(), 0), 1);
        free(&lru, e);
        assert_eq!(lru.total(), 0);
    }

    /// The milder interleaving: the record exists (pinned by a store) when
    /// the cgroup goes offline, still empty. Reparenting must keep it as a
    /// redirect so the store's add reaches the parent's list instead of
    /// silently leaving the entry off the LRU.
    #[test]
    fn pinned_empty_record_survives_reparent_and_add_reaches_the_parent() {
        let tree = MemcgTree::new(Gfp::KERNEL).unwrap();
        let parent = tree.create("p", Gfp::KERNEL).unwrap();
        let child = tree.create("p/c", Gfp::KERNEL).unwrap();
        let lru = Lru::new(1, 1).unwrap();
        lru.pin(0, child.id(), Some(&child), Gfp::KERNEL).unwrap();
        tree.offline("p/c").unwrap();
        lru.reparent(tc(), child.id(), &parent, Gfp::KERNEL)
            .unwrap();
        let e = entry(1, child.id());
        lru.add(0, tc(), get(e), e.id, 0);
        lru.unpin(0, child.id());
        assert_eq!(lru.count_one(parent.id(), 0), 1, "entry on the LRU");
        assert_eq!(lru.nr_records(), 2);
        free(&lru, e);
        assert_eq!(lru.total(), 0);
        assert_eq!(lru.nr_records(), 1, "the redirect went with its last key");
        // An unpin with no entry left also reaps the redirect.
        let c2 = tree.create("p/d", Gfp::KERNEL).unwrap();
        lru.pin(0, c2.id(), Some(&c2), Gfp::KERNEL).unwrap();
        tree.offline("p/d").unwrap();
        lru.reparent(tc(), c2.id(), &parent, Gfp::KERNEL).unwrap();
        assert_eq!(lru.nr_records(), 2);
        lru.unpin(0, c2.id());
        assert_eq!(lru.nr_records(), 1);
    }

    /// A live record's own entries are counted by its lists, not its
    /// `nr_keyed`; reparenting twice (grandchild into child, child into
    /// parent) must still keep each redirect until its last entry goes, and
    /// entries keyed by either dead cgroup must still leave the parent's list.
    #[test]
    fn redirects_live_until_their_last_entry_after_two_reparents() {
        let tree = MemcgTree::new(Gfp::KERNEL).unwrap();
        let parent = tree.create("p", Gfp::KERNEL).unwrap();
        let child = tree.create("p/c", Gfp::KERNEL).unwrap();
        let grand = tree.create("p/c/g", Gfp::KERNEL).unwrap();
        let lru = Lru::new(1, 2).unwrap();
        lru.ensure(parent.id(), Some(&parent), Gfp::KERNEL).unwrap();
        lru.ensure(child.id(), Some(&child), Gfp::KERNEL).unwrap();
        lru.ensure(grand.id(), Some(&grand), Gfp::KERNEL).unwrap();
        let g: alloc::vec::Vec<_> = [1, 3].iter().map(|&o| entry(o, grand.id())).collect();
        let c: alloc::vec::Vec<_> = [5, 7].iter().map(|&o| entry(o, child.id())).collect();
        let p = entry(9, parent.id());
        for e in g.iter().chain(c.iter()).chain([&p]) {
            // Adds on both CPUs' map locks.
            lru.add(e.id.get() as usize % 2, tc(), get(*e), e.id, 0);
        }
        tree.offline("p/c/g").unwrap();
        lru.reparent(tc(), grand.id(), &child, Gfp::KERNEL).unwrap();
        assert_eq!(lru.count_one(child.id(), 0), 4);
        // One of the grandchild's entries goes while it redirects to the child.
        free(&lru, g[0]);
        assert_eq!(lru.nr_records(), 3);
        tree.offline("p/c").unwrap();
        lru.reparent(tc(), child.id(), &parent, Gfp::KERNEL)
            .unwrap();
        assert_eq!(lru.count_one(parent.id(), 0), 4);
        assert_eq!(lru.nr_records(), 3, "both redirects are kept");
        free(&lru, c[0]);
        free(&lru, g[1]);
        assert_eq!(
            lru.nr_records(),
            2,
            "the grandchild's went with its last entry"
        );
        assert_eq!(lru.count_one(parent.id(), 0), 2);
        free(&lru, c[1]);
        assert_eq!(lru.nr_records(), 1, "the child's went with its last entry");
        free(&lru, p);
        assert_eq!(lru.total(), 0);
        assert_eq!(lru.nr_records(), 1, "a live record stays");
    }

    /// Each sub-list of each node (lock, head, tail, counts) is alone in
    /// its cache line, as Linux's `list_lru_node`: deletes on one sub-list
    /// never write a line another sub-list's users write.
    #[test]
    fn each_sublist_has_a_cache_line_of_its_own() {
        for nr_cpus in [1, 2, 3, 4, 8] {
            let lru = Lru::new(3, nr_cpus).unwrap();
            lru.ensure(4, None, Gfp::KERNEL).unwrap();
            let addrs = lru.map.read(0, |map| {
                let m = map.find(&4).get().unwrap();
                m.subs
                    .iter()
                    .map(|n| ptr::from_ref(n).addr())
                    .collect::<Vec<_>>()
            });
            assert_eq!(addrs.len(), 3 * nr_cpus.min(MAX_SUBLISTS));
            for w in addrs.windows(2) {
                assert!(w[0] % 64 == 0 && w[1] - w[0] >= 64);
            }
        }
    }

    /// An entry as store makes it on CPU `cpu`: on that CPU's sub-list.
    fn entry_on(lru: &Lru, cpu: usize, off: u64, memcg: u32) -> EntryPtr {
        let mut e = ZswapEntry::new(SwpEntry::new(0, off).unwrap(), memcg).unwrap();
        e.set_object(zpool::Handle::from_raw(off + 1), 100, 1)
            .unwrap();
        e.set_referenced(off.is_multiple_of(2));
        e.set_lru_sublist(lru.sublist_of(cpu));
        EntryPtr::new_in(tc().alloc(0, 0, Gfp::KERNEL).unwrap(), e)
    }

    /// Stores on CPU `cpu`: the entry's sub-list, then the add.
    fn store_on(lru: &Lru, cpu: usize, off: u64, memcg: u32, nid: usize) -> EntryPtr {
        let e = entry_on(lru, cpu, off, memcg);
        lru.add(cpu, tc(), get(e), e.id, nid);
        e
    }

    /// Entries on each sub-list of (memcg, node), checking each sub-list's
    /// links both ways and its `nr` and `nr_own` against them.
    fn sub_counts(lru: &Lru, memcg: u32, nid: usize) -> Vec<usize> {
        lru.map.read(0, |map| {
            let m = map.find(&memcg).get().unwrap();
            m.node_subs(nid)
                .iter()
                .enumerate()
                .map(|(s, sub)| {
                    let l = sub.list.lock();
                    let (mut n, mut own, mut prev, mut cur) = (0, 0, 0, l.head);
                    // SAFETY: ids on a list we hold the lock of.
                    while let Some(e) = unsafe { LruList::at(tc(), cur) } {
                        // SAFETY: as above.
                        let link = unsafe { e.lru_link() };
                        assert_eq!(link.prev, prev);
                        assert_eq!(e.lru_sublist(), s, "on the sub-list it names");
                        own += usize::from(e.lru_memcg() == memcg);
                        n += 1;
                        prev = cur;
                        cur = link.next;
                    }
                    assert_eq!((l.tail, l.nr), (prev, n));
                    if m.redirect.load(Ordering::Relaxed) == 0 {
                        assert_eq!(l.nr_own, own, "nr_own counts the record's own");
                    }
                    n
                })
                .collect()
        })
    }

    #[test]
    fn stores_on_two_cpus_go_on_two_sublists_and_any_cpu_deletes() {
        let lru = Lru::new(1, 2).unwrap();
        lru.ensure(9, None, Gfp::KERNEL).unwrap();
        assert_ne!(lru.sublist_of(0), lru.sublist_of(1));
        let a = store_on(&lru, 0, 1, 9, 0);
        let b = store_on(&lru, 1, 3, 9, 0);
        let c = store_on(&lru, 1, 5, 9, 0);
        assert_eq!(get(a).lru_sublist(), 0);
        assert_eq!(get(b).lru_sublist(), 1);
        assert_eq!(sub_counts(&lru, 9, 0), [1, 2]);
        assert_eq!(lru.count_one(9, 0), 3);
        // A load on CPU 0 deletes an entry stored on CPU 1, from CPU 1's
        // sub-list; one on CPU 1 deletes CPU 0's.
        lru.del(0, tc(), get(b), 0);
        assert_eq!(sub_counts(&lru, 9, 0), [1, 1]);
        lru.del(1, tc(), get(a), 0);
        assert_eq!(sub_counts(&lru, 9, 0), [0, 1]);
        assert_eq!(lru.count_one(9, 0), 1);
        for e in [a, b] {
            // SAFETY: the test owns the entry; it is unlinked above.
            unsafe { OwnedEntry::from_erased(e).free_memory(tc()) };
        }
        free(&lru, c);
        assert_eq!(lru.total(), 0);
    }

    /// Stores from the kept record's fast path (no map lock) land on their
    /// CPU's sub-list too, and deletes from either CPU find them.
    #[test]
    fn the_kept_record_has_sublists_too() {
        let lru = Lru::new(1, 4).unwrap();
        lru.ensure(0, None, Gfp::KERNEL).unwrap();
        lru.keep(0, 0);
        let es: Vec<_> = (0..8)
            .map(|i| store_on(&lru, i, 2 * i as u64 + 1, 0, 0))
            .collect();
        assert_eq!(sub_counts(&lru, 0, 0), [2, 2, 2, 2]);
        for (i, e) in es.iter().enumerate() {
            lru.del(3 - i % 4, tc(), get(*e), 0);
        }
        assert_eq!(sub_counts(&lru, 0, 0), [0, 0, 0, 0]);
        for e in es {
            free(&lru, e);
        }
        assert_eq!(lru.total(), 0);
    }

    /// The walk takes the sub-lists' heads in turn, oldest first within
    /// each, skips an empty sub-list, and is empty only when all are.
    #[test]
    fn the_walk_alternates_between_sublists() {
        let lru = Lru::new(1, 2).unwrap();
        lru.ensure(9, None, Gfp::KERNEL).unwrap();
        // Odd offsets: not referenced, every head is a candidate.
        let es: Vec<_> = [(0, 1), (0, 3), (0, 5), (1, 7), (1, 9)]
            .iter()
            .map(|&(cpu, o)| store_on(&lru, cpu, o, 9, 0))
            .collect();
        // Sub-list 1 runs out after two turns; 5 follows 3 at once.
        assert_eq!(order(&lru, 9), [1, 7, 3, 9, 5]);
        // Second chance stays per sub-list: a referenced head of sub-list 1
        // is rotated on its own sub-list, and the turn passes.
        let r = store_on(&lru, 1, 10, 9, 0);
        lru.del(0, tc(), get(es[3]), 0);
        lru.del(0, tc(), get(es[4]), 0);
        assert_eq!(sub_counts(&lru, 9, 0), [3, 1]);
        // The cursor is after sub-list 0 (its 5 was the last taken).
        assert!(matches!(lru.isolate_head(tc(), 9, 0), Isolate::Rotated));
        match lru.isolate_head(tc(), 9, 0) {
            Isolate::Candidate { swp, .. } => assert_eq!(swp.offset(), 1),
            _ => panic!("expected a candidate"),
        }
        match lru.isolate_head(tc(), 9, 0) {
            Isolate::Candidate { swp, .. } => assert_eq!(swp.offset(), 10),
            _ => panic!("expected the rotated entry, now unreferenced"),
        }
        for e in [es[3], es[4]] {
            // SAFETY: the test owns the entry; it is unlinked above.
            unsafe { OwnedEntry::from_erased(e).free_memory(tc()) };
        }
        for e in [es[0], es[1], es[2], r] {
            free(&lru, e);
        }
        assert!(matches!(lru.isolate_head(tc(), 9, 0), Isolate::Empty));
        assert_eq!(lru.total(), 0);
    }

    /// Counts add up every sub-list of every node.
    #[test]
    fn counts_sum_the_sublists() {
        let lru = Lru::new(2, 3).unwrap();
        lru.ensure(5, None, Gfp::KERNEL).unwrap();
        lru.ensure(6, None, Gfp::KERNEL).unwrap();
        let mut es = Vec::new();
        for (i, (cpu, nid, memcg)) in [
            (0, 0, 5),
            (1, 0, 5),
            (2, 0, 5),
            (2, 1, 5),
            (4, 1, 5),
            (1, 1, 6),
        ]
        .into_iter()
        .enumerate()
        {
            es.push((store_on(&lru, cpu, 2 * i as u64 + 1, memcg, nid), nid));
        }
        assert_eq!(sub_counts(&lru, 5, 0), [1, 1, 1]);
        assert_eq!(sub_counts(&lru, 5, 1), [0, 1, 1]);
        assert_eq!(sub_counts(&lru, 6, 1), [0, 1, 0]);
        assert_eq!(
            (
                lru.count_one(5, 0),
                lru.count_one(5, 1),
                lru.count_one(6, 1)
            ),
            (3, 2, 1)
        );
        assert_eq!((lru.count_memcg(5), lru.count_memcg(6)), (5, 1));
        assert_eq!(lru.total(), 6);
        for (e, nid) in es {
            lru.del(0, tc(), get(e), nid);
            // SAFETY: the test owns the entry; it is unlinked above.
            unsafe { OwnedEntry::from_erased(e).free_memory(tc()) };
        }
        assert_eq!(lru.total(), 0);
    }

    /// A dead child's entries, stored on several CPUs, go in front of the
    /// parent's on the same sub-lists; deletes through the redirect find
    /// them there and the redirect goes with its last entry.
    #[test]
    fn reparenting_splices_each_sublist_onto_the_parents_same_sublist() {
        let tree = MemcgTree::new(Gfp::KERNEL).unwrap();
        let parent = tree.create("p", Gfp::KERNEL).unwrap();
        let child = tree.create("p/c", Gfp::KERNEL).unwrap();
        let (p, c) = (parent.id(), child.id());
        let lru = Lru::new(1, 4).unwrap();
        lru.ensure(p, Some(&parent), Gfp::KERNEL).unwrap();
        lru.ensure(c, Some(&child), Gfp::KERNEL).unwrap();
        // Odd offsets: every head is a candidate.
        let own: Vec<_> = [(0, 1), (1, 3)]
            .iter()
            .map(|&(cpu, o)| store_on(&lru, cpu, o, p, 0))
            .collect();
        let moved: Vec<_> = [(0, 5), (1, 7), (2, 9), (3, 11)]
            .iter()
            .map(|&(cpu, o)| store_on(&lru, cpu, o, c, 0))
            .collect();
        assert_eq!(sub_counts(&lru, c, 0), [1, 1, 1, 1]);
        tree.offline("p/c").unwrap();
        lru.reparent(tc(), c, &parent, Gfp::KERNEL).unwrap();
        assert_eq!(sub_counts(&lru, p, 0), [2, 2, 1, 1]);
        assert_eq!(lru.count_one(c, 0), 0);
        // Sub-lists in turn, the child's entries first within each.
        assert_eq!(order(&lru, p), [5, 7, 9, 11, 1, 3]);
        assert_eq!(lru.nr_records(), 2);
        // Deletes through the redirect, from CPUs other than the stores'.
        for (i, e) in moved.into_iter().enumerate() {
            lru.del(3 - i, tc(), get(e), 0);
            // SAFETY: the test owns the entry; it is unlinked above.
            unsafe { OwnedEntry::from_erased(e).free_memory(tc()) };
        }
        assert_eq!(lru.nr_records(), 1, "the redirect went with its last entry");
        assert_eq!(sub_counts(&lru, p, 0), [1, 1, 0, 0]);
        for e in own {
            free(&lru, e);
        }
        assert_eq!(lru.total(), 0);
    }

    /// One CPU: one sub-list, whatever CPU number a store passes, and the
    /// walk is Linux's: strictly oldest first, a referenced head rotated to
    /// the tail, the cursor never used.
    #[test]
    fn one_cpu_is_linuxs_one_list() {
        let lru = Lru::new(1, 1).unwrap();
        lru.ensure(9, None, Gfp::KERNEL).unwrap();
        assert_eq!(lru.nr_sub, 1);
        // Even offsets are referenced: 0 and 2 get a second chance.
        let es: Vec<_> = (0..5)
            .map(|o| store_on(&lru, o as usize * 3, o, 9, 0))
            .collect();
        assert_eq!(sub_counts(&lru, 9, 0), [5]);
        let mut seen = Vec::new();
        loop {
            match lru.isolate_head(tc(), 9, 0) {
                Isolate::Rotated => seen.push(None),
                Isolate::Candidate { swp, .. } => seen.push(Some(swp.offset())),
                Isolate::Empty => unreachable!(),
            }
            if seen.len() == 7 {
                break;
            }
        }
        // 0, 2 and 4 rotated (second chance), 1 and 3 candidates (rotated
        // too, before the lock is dropped); then the list is back in store
        // order, none referenced: 0, 1.
        assert_eq!(seen, [None, Some(1), None, Some(3), None, Some(0), Some(1)]);
        let cursor = lru.map.read(0, |map| {
            map.find(&9).get().unwrap().nodes[0]
                .cursor
                .load(Ordering::Relaxed)
        });
        assert_eq!(cursor, 0);
        for e in es {
            free(&lru, e);
        }
        assert_eq!(lru.total(), 0);
        // More CPUs than sub-lists: CPUs share them, in turn.
        let lru = Lru::new(1, 8).unwrap();
        assert_eq!(
            (lru.nr_sub, lru.sublist_of(5), lru.sublist_of(7)),
            (MAX_SUBLISTS, 1, 3)
        );
    }

    #[test]
    fn disk_swapins_are_consumed_up_to_the_list_length() {
        let lru = Lru::new(2, 1).unwrap();
        lru.ensure(7, None, Gfp::KERNEL).unwrap();
        for _ in 0..5 {
            lru.note_disk_swapin(7, 1);
        }
        assert_eq!(lru.consume_disk_swapins(7, 1, 3), 3);
        assert_eq!(lru.consume_disk_swapins(7, 1, 3), 2);
        assert_eq!(lru.consume_disk_swapins(7, 1, 3), 0);
        assert_eq!(lru.consume_disk_swapins(7, 0, 3), 0);
    }
}
