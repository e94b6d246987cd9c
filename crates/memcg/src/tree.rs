//! The hierarchy ([`MemcgTree`]): naming, ids, lifecycle, iteration, and the
//! limited charge with its reclaim retry loop.

use alloc::string::String;
use alloc::vec::Vec;

use kbase::sync::RwLock;
use kbase::{Error, Gfp, KArc, PAGE_SIZE, Result};

use crate::memcg::{MemCgroup, MemcgRef, ObjCgroupRef};

const PAGE: u64 = PAGE_SIZE as u64;

/// Reclaim attempts of one charge before it fails with `ENOMEM`
/// (Linux's `MAX_RECLAIM_RETRIES`).
pub const MAX_RECLAIM_RETRIES: u32 = 16;

/// A charge gives up early after this many reclaim calls that freed nothing.
pub const MAX_NO_PROGRESS: u32 = 3;

/// Pages asked of the reclaim hook per call by `memory.reclaim`
/// (Linux's `SWAP_CLUSTER_MAX`).
pub const SWAP_CLUSTER_MAX: u64 = 32;

/// The root cgroup's id.
pub const ROOT_ID: u32 = 1;

/// Largest cgroup id (Linux's `MEM_CGROUP_ID_MAX`); `create` fails with
/// `ENOSPC` when all are in use.
pub const MEMCG_ID_MAX: u32 = u16::MAX as u32;

/// Longest path component (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// How many times a control operation re-reserves memory outside the tree
/// lock when the tree changed under it, before giving up with `EAGAIN`.
const RESERVE_TRIES: u32 = 8;

/// What the platform provides to free memory charged to a cgroup.
///
/// Called with no lock of this crate held; it may re-enter this crate
/// (charge, uncharge, stat, iterate) and zswap.
pub trait ReclaimHook {
    /// Tries to free `nr_pages` charged to `memcg` or its descendants
    /// (`try_to_free_mem_cgroup_pages`); returns the pages reclaimed.
    fn reclaim(&self, memcg: &MemcgRef, nr_pages: u64, gfp: Gfp) -> u64;
}

/// A hook that reclaims nothing (charges then fail at the limit at once).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReclaim;

impl ReclaimHook for NoReclaim {
    fn reclaim(&self, _memcg: &MemcgRef, _nr_pages: u64, _gfp: Gfp) -> u64 {
        0
    }
}

/// What [`MemcgTree::offline`] and [`MemcgTree::remove`] hand back: the
/// cgroup that went offline and the parent that inherited its charges
/// (zswap-core moves the dying cgroup's LRU there, and advances its shrink
/// cursor with [`crate::ShrinkCursor::offline_cleanup`]).
#[derive(Debug, Clone)]
pub struct Offlined {
    /// The cgroup now offline.
    pub memcg: MemcgRef,
    /// Its parent, which now holds its charges and objcgs.
    pub parent: MemcgRef,
    /// Did this call take it offline (false: `remove` of a cgroup that was
    /// already offline)? zswap-core's offline hook is due only when true.
    pub newly_offline: bool,
}

/// A slot of the id table.
///
/// # Invariants
///
/// `children` holds the ids of the linked children, sorted ascending; it is
/// empty when `linked` is false. `memcg.id()` is the slot index.
struct Node {
    memcg: MemcgRef,
    children: Vec<u32>,
    /// In the namespace (lookup by path finds it).
    linked: bool,
}

struct TreeInner {
    /// Index = id; slot 0 and slot 1 (root) never free.
    slots: Vec<Option<Node>>,
}

impl TreeInner {
    fn node(&self, id: u32) -> Option<&Node> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    fn node_mut(&mut self, id: u32) -> Option<&mut Node> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// The linked node at `components` below root.
    fn resolve<'a>(&self, components: impl Iterator<Item = &'a str>) -> Result<&Node> {
        let mut node = self.node(ROOT_ID).ok_or(Error::ENOENT)?;
        for name in components {
            node = node
                .children
                .iter()
                .filter_map(|id| self.node(*id))
                .find(|n| n.memcg.name() == name)
                .ok_or(Error::ENOENT)?;
        }
        Ok(node)
    }

    /// Is the id free or reusable (the cgroup is fully gone: unlinked, no
    /// record pins its id, and the table holds the only reference)?
    fn reusable(slot: &Option<Node>) -> bool {
        match slot {
            None => true,
            Some(n) => !n.linked && n.memcg.id_refs() == 0 && KArc::strong_count(&n.memcg) == 1,
        }
    }

    /// The smallest usable id (may be `slots.len()`: the table must grow).
    fn free_id(&self) -> Result<u32> {
        let found = self
            .slots
            .iter()
            .enumerate()
            .skip(ROOT_ID as usize + 1)
            .find(|(_, s)| Self::reusable(s))
            .map(|(i, _)| i)
            .unwrap_or(self.slots.len());
        let id = u32::try_from(found).map_err(|_| Error::ENOSPC)?;
        if id > MEMCG_ID_MAX {
            return Err(Error::ENOSPC);
        }
        Ok(id)
    }
}

/// Splits and validates a path: optional leading `/`, components non-empty,
/// not `.`/`..`, no NUL, at most [`NAME_MAX`] bytes. An empty path (or `/`)
/// is root.
fn components(path: &str) -> Result<impl Iterator<Item = &str> + Clone> {
    let rel = path.strip_prefix('/').unwrap_or(path);
    if !rel.is_empty() {
        for c in rel.split('/') {
            if c.is_empty() || c == "." || c == ".." || c.len() > NAME_MAX || c.contains('\0') {
                return Err(Error::EINVAL);
            }
        }
    }
    Ok(rel.split('/').filter(|c| !c.is_empty()))
}

/// The hierarchy of memory cgroups. Root (id 1) always exists.
///
/// # Invariants
///
/// - `inner.slots[1]` is root, linked, online.
/// - A linked node's parent is linked; an online node's parent is online.
/// - An unlinked node has no children and is offline.
pub struct MemcgTree {
    /// The hierarchy lock (`cgroup_mutex` for changes; lookups and
    /// iteration read it, as Linux uses RCU).
    inner: RwLock<TreeInner>,
    root: MemcgRef,
}

impl core::fmt::Debug for MemcgTree {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemcgTree").finish_non_exhaustive()
    }
}

impl MemcgTree {
    /// A tree holding only root (id 1).
    pub fn new(gfp: Gfp) -> Result<MemcgTree> {
        let root = MemCgroup::alloc(ROOT_ID, String::new(), None, gfp)?;
        let mut slots = Vec::new();
        if let Err(e) = slots.try_reserve(4) {
            root.break_objcg_cycles();
            return Err(e.into());
        }
        slots.push(None);
        slots.push(Some(Node {
            memcg: root.clone(),
            children: Vec::new(),
            linked: true,
        }));
        Ok(MemcgTree {
            inner: RwLock::new(TreeInner { slots }),
            root,
        })
    }

    /// The root cgroup.
    pub fn root(&self) -> MemcgRef {
        self.root.clone()
    }

    /// `mkdir`: creates the cgroup at `path` (`"a/b"`; the parent must exist
    /// and be online). `EEXIST` if the name is taken (or `path` is root),
    /// `ENOENT` if the parent is missing or offline, `EINVAL` for a bad path,
    /// `ENOSPC` when ids run out, `ENOMEM`; `EAGAIN` if the tree kept
    /// changing while memory was reserved outside the lock.
    pub fn create(&self, path: &str, gfp: Gfp) -> Result<MemcgRef> {
        let comps = components(path)?;
        let count = comps.clone().count();
        let name = comps.clone().last().ok_or(Error::EEXIST)?;
        let parent_comps = comps.clone().take(count.saturating_sub(1));
        for _ in 0..RESERVE_TRIES {
            // Phase 1: look, under the lock.
            let (parent, id, slots_need, children_need) = {
                let g = self.inner.read();
                let pnode = g.resolve(parent_comps.clone())?;
                if !pnode.memcg.is_online() {
                    return Err(Error::ENOENT);
                }
                if pnode
                    .children
                    .iter()
                    .filter_map(|id| g.node(*id))
                    .any(|n| n.memcg.name() == name)
                {
                    return Err(Error::EEXIST);
                }
                let id = g.free_id()?;
                (
                    pnode.memcg.clone(),
                    id,
                    g.slots.len() + 1,
                    pnode.children.len() + 1,
                )
            };
            // Phase 2: allocate, unlocked.
            let mut full = String::new();
            let sep = usize::from(!parent.path().is_empty());
            full.try_reserve(parent.path().len() + sep + name.len())?;
            full.push_str(parent.path());
            if sep == 1 {
                full.push('/');
            }
            full.push_str(name);
            let mut spare_slots: Vec<Option<Node>> = Vec::new();
            spare_slots.try_reserve(slots_need)?;
            let mut spare_children: Vec<u32> = Vec::new();
            spare_children.try_reserve(children_need)?;
            let memcg = MemCgroup::alloc(id, full, Some(parent.clone()), gfp)?;
            // Phase 3: re-check and publish, under the lock.
            let mut reaped = None;
            let done = {
                let mut g = self.inner.write();
                self.publish_locked(
                    &mut g,
                    &parent,
                    name,
                    &memcg,
                    &mut spare_slots,
                    &mut spare_children,
                    &mut reaped,
                )
            };
            drop(reaped);
            match done {
                Ok(true) => return Ok(memcg),
                Ok(false) => memcg.break_objcg_cycles(),
                Err(e) => {
                    memcg.break_objcg_cycles();
                    return Err(e);
                }
            }
        }
        Err(Error::EAGAIN)
    }

    /// Links `memcg` under `parent` if nothing changed that matters since
    /// phase 1. `Ok(false)`: retry from phase 1.
    #[allow(clippy::too_many_arguments)]
    fn publish_locked(
        &self,
        g: &mut TreeInner,
        parent: &MemcgRef,
        name: &str,
        memcg: &MemcgRef,
        spare_slots: &mut Vec<Option<Node>>,
        spare_children: &mut Vec<u32>,
        reaped: &mut Option<Node>,
    ) -> Result<bool> {
        let id = memcg.id();
        let pnode = g.node(parent.id()).ok_or(Error::ENOENT)?;
        if !KArc::ptr_eq(&pnode.memcg, parent) || !pnode.linked || !parent.is_online() {
            return Err(Error::ENOENT);
        }
        if pnode
            .children
            .iter()
            .filter_map(|c| g.node(*c))
            .any(|n| n.memcg.name() == name)
        {
            return Err(Error::EEXIST);
        }
        // The id must still be usable and the vectors must have room.
        let idx = id as usize;
        let slot_ok = match g.slots.get(idx) {
            Some(s) => TreeInner::reusable(s),
            None => idx == g.slots.len(),
        };
        if !slot_ok {
            return Ok(false);
        }
        if idx == g.slots.len() && g.slots.len() == g.slots.capacity() {
            if spare_slots.capacity() <= g.slots.len() {
                return Ok(false);
            }
            spare_slots.append(&mut g.slots);
            core::mem::swap(&mut g.slots, spare_slots);
        }
        let Some(pnode) = g.node_mut(parent.id()) else {
            return Ok(false);
        };
        if pnode.children.len() == pnode.children.capacity() {
            if spare_children.capacity() <= pnode.children.len() {
                return Ok(false);
            }
            spare_children.append(&mut pnode.children);
            core::mem::swap(&mut pnode.children, spare_children);
        }
        let pos = pnode.children.binary_search(&id).unwrap_or_else(|p| p);
        pnode.children.insert(pos, id);
        let node = Node {
            memcg: memcg.clone(),
            children: Vec::new(),
            linked: true,
        };
        match g.slots.get_mut(idx) {
            Some(slot) => *reaped = slot.replace(node),
            None => g.slots.push(Some(node)),
        }
        Ok(true)
    }

    /// The cgroup at `path` (online or offline, as long as it has not been
    /// removed). `""` and `"/"` are root. `ENOENT`, `EINVAL` (bad path).
    pub fn lookup(&self, path: &str) -> Result<MemcgRef> {
        let comps = components(path)?;
        let g = self.inner.read();
        Ok(g.resolve(comps)?.memcg.clone())
    }

    /// `mem_cgroup_from_id()`: the cgroup with this id, while the id is
    /// allocated: online, offline, or removed but still referenced or pinned
    /// by charged pages (`None` for 0 and for free ids). Charging a cgroup
    /// that is offline charges its nearest online ancestor.
    pub fn get(&self, id: u32) -> Option<MemcgRef> {
        if id == 0 {
            return None;
        }
        let g = self.inner.read();
        let slot = g.slots.get(id as usize)?;
        if TreeInner::reusable(slot) {
            return None;
        }
        slot.as_ref().map(|n| n.memcg.clone())
    }

    /// Like [`MemcgTree::get`], but only an online cgroup
    /// (`mem_cgroup_tryget_online`).
    pub fn get_online(&self, id: u32) -> Option<MemcgRef> {
        self.get(id).filter(|m| m.is_online())
    }

    /// How many ids are in use (online, offline, or removed but still
    /// referenced or pinned).
    pub fn nr_ids(&self) -> usize {
        let g = self.inner.read();
        g.slots.iter().filter(|s| !TreeInner::reusable(s)).count()
    }

    /// `rmdir`'s first half (`css_offline`): takes the cgroup at `path`
    /// offline. Its page counters, swap charge and zswap gauges pass to the
    /// parent, its objcgs are reparented, and charges that still name it
    /// land on the parent from now on. It stays visible at `path` until
    /// [`MemcgTree::remove`]. `EINVAL` for root or a cgroup already offline,
    /// `EBUSY` if a child is online, `ENOENT`.
    ///
    /// The caller must then run zswap-core's offline hook (LRU reparenting,
    /// [`crate::ShrinkCursor::offline_cleanup`]).
    pub fn offline(&self, path: &str) -> Result<Offlined> {
        let comps = components(path)?;
        self.offline_at(comps, false)
    }

    /// `rmdir`: unlinks the cgroup at `path` from the namespace (taking it
    /// offline first if needed). The name can be reused at once; the id is
    /// reused once the cgroup is fully gone (no references, no pages
    /// charged through its id). `EBUSY` if it has children (online or
    /// offline), `EINVAL` for root, `ENOENT`.
    pub fn remove(&self, path: &str) -> Result<Offlined> {
        let comps = components(path)?;
        self.offline_at(comps, true)
    }

    fn offline_at<'a>(
        &self,
        comps: impl Iterator<Item = &'a str> + Clone,
        unlink: bool,
    ) -> Result<Offlined> {
        for _ in 0..RESERVE_TRIES {
            let (memcg, moving_need, parent_need) = {
                let g = self.inner.read();
                let node = g.resolve(comps.clone())?;
                let memcg = node.memcg.clone();
                let parent = memcg.parent_ref().ok_or(Error::EINVAL)?;
                self.check_offline(&g, node, unlink)?;
                let n = memcg.objcg_count();
                let (plen, _) = parent.objcg_list_room();
                (memcg, n, plen + n)
            };
            let mut moving = Vec::new();
            moving.try_reserve(moving_need)?;
            let mut spare = Vec::new();
            spare.try_reserve(parent_need)?;
            let done = {
                let g = &mut *self.inner.write();
                let node = g.resolve(comps.clone())?;
                if !KArc::ptr_eq(&node.memcg, &memcg) {
                    continue;
                }
                self.check_offline(g, node, unlink)?;
                let parent = memcg.parent_ref().ok_or(Error::EINVAL)?.clone();
                let n = memcg.objcg_count();
                let (plen, pcap) = parent.objcg_list_room();
                let room =
                    moving.capacity() >= n && (pcap - plen >= n || spare.capacity() >= plen + n);
                let newly_offline = memcg.is_online();
                if !newly_offline || room {
                    if newly_offline {
                        memcg.offline_locked(&parent, &mut moving, &mut spare);
                    }
                    if unlink {
                        Self::unlink_locked(g, &memcg, &parent);
                    }
                    Some(Offlined {
                        memcg,
                        parent,
                        newly_offline,
                    })
                } else {
                    None
                }
            };
            if let Some(o) = done {
                return Ok(o);
            }
        }
        Err(Error::EAGAIN)
    }

    fn check_offline(&self, g: &TreeInner, node: &Node, unlink: bool) -> Result<()> {
        if node.memcg.is_root() {
            return Err(Error::EINVAL);
        }
        if unlink {
            if !node.children.is_empty() {
                return Err(Error::EBUSY);
            }
            return Ok(());
        }
        if !node.memcg.is_online() {
            return Err(Error::EINVAL);
        }
        let online_child = node
            .children
            .iter()
            .filter_map(|c| g.node(*c))
            .any(|n| n.memcg.is_online());
        if online_child {
            return Err(Error::EBUSY);
        }
        Ok(())
    }

    fn unlink_locked(g: &mut TreeInner, memcg: &MemcgRef, parent: &MemcgRef) {
        let id = memcg.id();
        if let Some(p) = g.node_mut(parent.id())
            && let Ok(pos) = p.children.binary_search(&id)
        {
            p.children.remove(pos);
        }
        if let Some(n) = g.node_mut(id) {
            n.linked = false;
        }
    }

    /// `mem_cgroup_iter()` with `mem_cgroup_tryget_online()`: the next online
    /// cgroup after `prev` in pre-order (children by ascending id), or root
    /// for `None`. Returns `None` once at the end of a full pass; the next
    /// call with `None` starts over at root. `prev` may have gone offline or
    /// been removed since it was returned: the walk resumes after its old
    /// position.
    pub fn iter_next(&self, prev: Option<&MemcgRef>) -> Option<MemcgRef> {
        let g = self.inner.read();
        let Some(prev) = prev else {
            // Root is always online.
            return Some(self.root.clone());
        };
        let mut cur = prev.clone();
        loop {
            let next = Self::preorder_next(&g, &cur)?;
            if next.is_online() {
                return Some(next);
            }
            cur = next;
        }
    }

    /// The pre-order successor of `cur` among linked cgroups.
    fn preorder_next(g: &TreeInner, cur: &MemcgRef) -> Option<MemcgRef> {
        let linked = |m: &MemcgRef| {
            g.node(m.id())
                .filter(|n| n.linked && KArc::ptr_eq(&n.memcg, m))
        };
        // First child.
        if let Some(first) = linked(cur)
            .and_then(|n| n.children.first())
            .and_then(|c| g.node(*c))
        {
            return Some(first.memcg.clone());
        }
        // Else the next sibling of `cur` or of its nearest ancestor that has
        // one.
        let mut at: &MemcgRef = cur;
        loop {
            let parent = at.parent_ref()?;
            if let Some(pn) = linked(parent) {
                let next = pn
                    .children
                    .iter()
                    .find(|c| **c > at.id())
                    .and_then(|c| g.node(*c));
                if let Some(n) = next {
                    return Some(n.memcg.clone());
                }
            }
            at = parent;
        }
    }

    /// Charges `nr_pages` pages to `memcg` and its ancestors
    /// (`try_charge_memcg`). Each level accepts only if it stays within its
    /// `memory.max`; when a level refuses, the reclaim hook is called for
    /// that cgroup (no lock of this crate held), then the charge is retried:
    /// at most [`MAX_RECLAIM_RETRIES`] hook calls (1 with `Gfp::NORETRY`),
    /// fewer if [`MAX_NO_PROGRESS`] calls reclaim nothing. Without
    /// `Gfp::DIRECT_RECLAIM` no reclaim runs. Fails with `ENOMEM`, except
    /// with `Gfp::NOFAIL`: then the charge is forced past `memory.max` (at
    /// once without `DIRECT_RECLAIM`, which is how reclaim context, Linux's
    /// `PF_MEMALLOC`, charges the folio zswap writeback allocates).
    ///
    /// The pages pin `memcg`'s id until [`MemcgTree::uncharge`] with the same
    /// cgroup. If `memcg` is offline, the nearest online ancestor is charged.
    pub fn try_charge(
        &self,
        memcg: &MemcgRef,
        nr_pages: u64,
        gfp: Gfp,
        reclaim: &dyn ReclaimHook,
    ) -> Result<()> {
        if nr_pages == 0 {
            return Ok(());
        }
        let bytes = nr_pages.checked_mul(PAGE).ok_or(Error::ENOMEM)?;
        let mut retries = if gfp.contains(Gfp::NORETRY) {
            1
        } else {
            MAX_RECLAIM_RETRIES
        };
        let mut no_progress = 0;
        loop {
            let over = match MemCgroup::try_charge_once(memcg, bytes) {
                Ok(()) => {
                    memcg.id_get(nr_pages);
                    return Ok(());
                }
                Err(over) => over,
            };
            if !gfp.can_block() || retries == 0 || no_progress >= MAX_NO_PROGRESS {
                if gfp.contains(Gfp::NOFAIL) {
                    // __GFP_NOFAIL, or reclaim context (PF_MEMALLOC, which
                    // callers express as NOFAIL without DIRECT_RECLAIM):
                    // reclaim must be able to make progress, so the charge
                    // goes past memory.max instead of failing.
                    MemCgroup::force_charge_ref(memcg, bytes);
                    memcg.id_get(nr_pages);
                    return Ok(());
                }
                return Err(Error::ENOMEM);
            }
            retries -= 1;
            if reclaim.reclaim(&over, nr_pages, gfp) == 0 {
                no_progress += 1;
            }
        }
    }

    /// Writes `memory.max` as the file does: sets the limit, then, while
    /// `memory.current` is above it, asks the hook for the excess (no lock
    /// held), giving up after [`MAX_RECLAIM_RETRIES`] calls that reclaim
    /// nothing. Like Linux, the write succeeds even if usage stays above the
    /// new limit (Linux would then OOM-kill; that is the platform's call:
    /// compare [`MemCgroup::memory_current`] with the limit). `EINVAL` on root
    /// or bad input, with nothing changed.
    pub fn write_memory_max(
        &self,
        memcg: &MemcgRef,
        v: &str,
        reclaim: &dyn ReclaimHook,
    ) -> Result<()> {
        memcg.set_memory_max(v)?;
        let mut retries = MAX_RECLAIM_RETRIES;
        loop {
            let (cur, max) = (memcg.memory_current(), memcg.memory_max());
            if cur <= max {
                return Ok(());
            }
            let excess = (cur - max).div_ceil(PAGE);
            if reclaim.reclaim(memcg, excess, Gfp::KERNEL) == 0 {
                if retries == 0 {
                    return Ok(());
                }
                retries -= 1;
            }
        }
    }

    /// Uncharges `nr_pages` charged by [`MemcgTree::try_charge`] on the same
    /// `memcg` (after an offline, from the ancestor that inherited them).
    pub fn uncharge(&self, memcg: &MemcgRef, nr_pages: u64) {
        if nr_pages == 0 {
            return;
        }
        memcg.uncharge_bytes(nr_pages.saturating_mul(PAGE));
        memcg.id_put(nr_pages);
    }

    /// `memory.reclaim`: asks the hook for `bytes` (rounded up to pages) in
    /// batches of [`SWAP_CLUSTER_MAX`] pages. Calls that reclaim nothing are
    /// retried [`MAX_RECLAIM_RETRIES`] times, then `EAGAIN` (less than asked
    /// was reclaimed), as Linux's `memory_reclaim()`.
    pub fn memory_reclaim(
        &self,
        memcg: &MemcgRef,
        bytes: u64,
        reclaim: &dyn ReclaimHook,
    ) -> Result<()> {
        let want = bytes.div_ceil(PAGE);
        let mut got = 0u64;
        let mut retries = MAX_RECLAIM_RETRIES;
        while got < want {
            let batch = (want - got).min(SWAP_CLUSTER_MAX);
            let n = reclaim.reclaim(memcg, batch, Gfp::KERNEL);
            if n == 0 {
                if retries == 0 {
                    return Err(Error::EAGAIN);
                }
                retries -= 1;
            }
            got = got.saturating_add(n);
        }
        Ok(())
    }

    /// [`MemcgTree::memory_reclaim`] with the value as written to the file.
    pub fn memory_reclaim_str(
        &self,
        memcg: &MemcgRef,
        v: &str,
        reclaim: &dyn ReclaimHook,
    ) -> Result<()> {
        let bytes = crate::parse::parse_bytes(v)?;
        self.memory_reclaim(memcg, bytes, reclaim)
    }

    /// Objcgs of `memcg`, its own and reparented ones (tests, debugging).
    pub fn nr_objcgs(&self, memcg: &MemcgRef) -> usize {
        memcg.objcg_count()
    }
}

impl Drop for MemcgTree {
    fn drop(&mut self) {
        // Break the memcg <-> objcg cycles; objcgs still held elsewhere keep
        // their memcg (and its ancestors) alive and keep working.
        let slots: Vec<Option<Node>> = core::mem::take(&mut self.inner.write().slots);
        for n in slots.iter().flatten() {
            n.memcg.break_objcg_cycles();
        }
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<MemcgTree>();
    is::<ObjCgroupRef>();
}
