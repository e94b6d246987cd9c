//! One memory cgroup ([`MemCgroup`]), its object cgroup ([`ObjCgroup`]), its
//! counters and the charging primitives the tree builds on.
//!
//! Every charge and uncharge lands on the *effective* cgroup: the one named
//! if it is online, else its nearest online ancestor (root never goes
//! offline). The check is made under the cgroup's `gate` read lock and the
//! counters are updated before that lock is dropped, so offline (which takes
//! the gate for writing) sees either all of a charge or none of it, and moves
//! exactly what is there to the parent. See the crate docs for the protocol.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use kbase::sync::{AtomicBool, AtomicU64, Mutex, Ordering, RwLock};
use kbase::{Error, Gfp, KArc, PAGE_SIZE, Result};

use crate::parse::{PAGE_COUNTER_MAX, parse_bool01, parse_limit_pages};

/// A reference to a memory cgroup.
pub type MemcgRef = KArc<MemCgroup>;
/// A reference to an object cgroup.
pub type ObjCgroupRef = KArc<ObjCgroup>;

const PAGE: u64 = PAGE_SIZE as u64;

/// Events counted in `memory.stat` (all in pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemcgEvent {
    /// A page loaded back from zswap.
    Zswpin,
    /// A page stored into zswap.
    Zswpout,
    /// A page written back from zswap to the swap device.
    Zswpwb,
    /// A page read from the swap device.
    Pswpin,
    /// A page written to the swap device.
    Pswpout,
    /// A zero-filled page read back from the swap core's zeromap (no I/O).
    SwpinZero,
    /// A zero-filled page swapped out into the zeromap (no I/O, not zswap).
    SwpoutZero,
}

/// A snapshot of a cgroup's `memory.*` counters.
///
/// All byte values are exact. Which cgroups a snapshot covers depends on how
/// it was taken: [`MemCgroup::stat`] is hierarchical (the cgroup and all its
/// descendants, live or gone, as cgroup v2 shows `memory.stat`);
/// [`MemCgroup::stat_local`] counts only what was charged to, or happened in,
/// this cgroup itself (gauges it inherited from offlined children included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStat {
    /// `memory.current`: bytes charged (pages and compressed zswap bytes).
    pub memory_current: u64,
    /// `memory.swap.current`, in bytes.
    pub swap_current: u64,
    /// `memory.swap.peak`, in bytes (hierarchical only; 0 in local stats).
    pub swap_peak: u64,
    /// `zswap`: compressed bytes held in zswap.
    pub zswap: u64,
    /// `zswapped`: original bytes of the pages held in zswap.
    pub zswapped: u64,
    /// `zswap_incomp`: bytes of pages stored uncompressed (raw).
    pub zswap_incomp: u64,
    /// `zswpin`: pages loaded from zswap.
    pub zswpin: u64,
    /// `zswpout`: pages stored into zswap.
    pub zswpout: u64,
    /// `zswpwb`: pages written back from zswap.
    pub zswpwb: u64,
    /// `pswpin`: pages read from the swap device.
    pub pswpin: u64,
    /// `pswpout`: pages written to the swap device.
    pub pswpout: u64,
    /// `swpin_zero`: zero-filled pages swapped in from the zeromap.
    pub swpin_zero: u64,
    /// `swpout_zero`: zero-filled pages swapped out to the zeromap.
    pub swpout_zero: u64,
}

impl fmt::Display for MemoryStat {
    /// The zswap and swap lines of `memory.stat`, in its `key value` format
    /// and order (byte values in bytes, events in pages).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "zswap {}", self.zswap)?;
        writeln!(f, "zswapped {}", self.zswapped)?;
        writeln!(f, "zswap_incomp {}", self.zswap_incomp)?;
        writeln!(f, "pswpin {}", self.pswpin)?;
        writeln!(f, "pswpout {}", self.pswpout)?;
        writeln!(f, "zswpin {}", self.zswpin)?;
        writeln!(f, "zswpout {}", self.zswpout)?;
        writeln!(f, "zswpwb {}", self.zswpwb)?;
        writeln!(f, "swpin_zero {}", self.swpin_zero)?;
        writeln!(f, "swpout_zero {}", self.swpout_zero)
    }
}

/// Gauges (they move to the parent on offline) and events (they stay).
#[derive(Default)]
pub(crate) struct Stats {
    zswap_b: AtomicU64,
    zswapped_pages: AtomicU64,
    zswap_incomp_pages: AtomicU64,
    zswpin: AtomicU64,
    zswpout: AtomicU64,
    zswpwb: AtomicU64,
    pswpin: AtomicU64,
    pswpout: AtomicU64,
    swpin_zero: AtomicU64,
    swpout_zero: AtomicU64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            zswap_b: AtomicU64::new(0),
            zswapped_pages: AtomicU64::new(0),
            zswap_incomp_pages: AtomicU64::new(0),
            zswpin: AtomicU64::new(0),
            zswpout: AtomicU64::new(0),
            zswpwb: AtomicU64::new(0),
            pswpin: AtomicU64::new(0),
            pswpout: AtomicU64::new(0),
            swpin_zero: AtomicU64::new(0),
            swpout_zero: AtomicU64::new(0),
        }
    }

    fn event(&self, ev: MemcgEvent) -> &AtomicU64 {
        match ev {
            MemcgEvent::Zswpin => &self.zswpin,
            MemcgEvent::Zswpout => &self.zswpout,
            MemcgEvent::Zswpwb => &self.zswpwb,
            MemcgEvent::Pswpin => &self.pswpin,
            MemcgEvent::Pswpout => &self.pswpout,
            MemcgEvent::SwpinZero => &self.swpin_zero,
            MemcgEvent::SwpoutZero => &self.swpout_zero,
        }
    }

    fn gauges(&self) -> [&AtomicU64; 3] {
        [
            &self.zswap_b,
            &self.zswapped_pages,
            &self.zswap_incomp_pages,
        ]
    }
}

/// Adds `n` to `a`, saturating (an overflow would need 2^64 bytes).
fn add(a: &AtomicU64, n: u64) {
    let _ = a.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
        Some(v.saturating_add(n))
    });
}

/// Subtracts `n` from `a`, stopping at zero. Uncharging more than was charged
/// is a caller bug (Linux warns "page_counter underflow"); the counter stays
/// at zero rather than wrapping.
fn sub(a: &AtomicU64, n: u64) {
    let _ = a.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

/// Adds `n` to `a` only if the result stays `<= max`. Never lets `a` exceed
/// `max`, even transiently (compare-and-swap, unlike Linux's add-then-check).
fn try_add(a: &AtomicU64, n: u64, max: u64) -> bool {
    a.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
        v.checked_add(n).filter(|new| *new <= max)
    })
    .is_ok()
}

/// A memory cgroup.
///
/// # Invariants
///
/// - `parent` is `None` exactly for root; root is always online.
/// - An online cgroup's ancestors are all online (offline refuses a cgroup
///   with online children).
/// - `online` changes only from true to false, under `gate` held for writing
///   (and the tree lock); every update of the charge counters (`usage`,
///   `swap_usage`, `hier`, `local`) happens under the gate of an online
///   cgroup held for reading, except the transfer done by offline itself.
///   (`id_refs` belongs to the id, not to the charges, and is not moved.)
/// - After offline, the hierarchical counters of this level (`usage`,
///   `swap_usage`, the gauges of `hier`) and its local gauges are zero; their
///   values live on in the parent.
pub struct MemCgroup {
    id: u32,
    path: String,
    parent: Option<MemcgRef>,
    /// Charge gate: the online flag, read-locked by every charge.
    gate: RwLock<bool>,
    /// Mirror of `gate` for lock-free `is_online()` reads.
    online: AtomicBool,
    /// memory.current in bytes (hierarchical: includes descendants).
    usage: AtomicU64,
    /// memory.max in bytes, a multiple of PAGE_SIZE or PAGE_COUNTER_MAX.
    max: AtomicU64,
    /// memory.swap.current in pages (hierarchical).
    swap_usage: AtomicU64,
    /// memory.swap.peak in pages.
    swap_peak: AtomicU64,
    /// Pages (memory and swap) charged under this cgroup's id and not yet
    /// uncharged through it: records (folios, swap slots) hold the id, so it
    /// is pinned until they let go (`mem_cgroup_id_get_many`).
    id_refs: AtomicU64,
    /// memory.zswap.max in pages.
    zswap_max: AtomicU64,
    /// memory.zswap.writeback of this cgroup alone.
    zswap_writeback: AtomicBool,
    /// Counters of this cgroup and all its descendants.
    hier: Stats,
    /// Counters of this cgroup alone.
    local: Stats,
    /// This cgroup's own objcg; `None` once offline (or the tree is gone).
    objcg: Mutex<Option<ObjCgroupRef>>,
    /// Objcgs of offlined descendants, reparented here.
    objcg_list: Mutex<Vec<ObjCgroupRef>>,
}

impl fmt::Debug for MemCgroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemCgroup")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("online", &self.is_online())
            .finish()
    }
}

impl MemCgroup {
    /// Allocates an online cgroup (not yet linked into a tree) with its objcg.
    pub(crate) fn alloc(
        id: u32,
        path: String,
        parent: Option<MemcgRef>,
        gfp: Gfp,
    ) -> Result<MemcgRef> {
        let memcg = KArc::try_new(
            MemCgroup {
                id,
                path,
                parent,
                gate: RwLock::new(true),
                online: AtomicBool::new(true),
                usage: AtomicU64::new(0),
                max: AtomicU64::new(PAGE_COUNTER_MAX),
                swap_usage: AtomicU64::new(0),
                swap_peak: AtomicU64::new(0),
                id_refs: AtomicU64::new(0),
                zswap_max: AtomicU64::new(PAGE_COUNTER_MAX),
                zswap_writeback: AtomicBool::new(true),
                hier: Stats::new(),
                local: Stats::new(),
                objcg: Mutex::new(None),
                objcg_list: Mutex::new(Vec::new()),
            },
            gfp,
        )?;
        let objcg = KArc::try_new(
            ObjCgroup {
                memcg: Mutex::new(memcg.clone()),
            },
            gfp,
        )?;
        *memcg.objcg.lock() = Some(objcg);
        Ok(memcg)
    }

    /// The cgroup id (root is 1). Stable for the cgroup's whole life; reused
    /// only once the cgroup is fully gone.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The path below root, without a leading slash (`""` for root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The last path component (`""` for root).
    pub fn name(&self) -> &str {
        match self.path.rfind('/') {
            Some(i) => self.path.get(i + 1..).unwrap_or(""),
            None => &self.path,
        }
    }

    /// The parent cgroup (`None` for root).
    pub fn parent(&self) -> Option<MemcgRef> {
        self.parent.clone()
    }

    pub(crate) fn parent_ref(&self) -> Option<&MemcgRef> {
        self.parent.as_ref()
    }

    /// Is this the root cgroup?
    pub fn is_root(&self) -> bool {
        self.parent.is_none()
    }

    /// Online (`css_is_online`): not yet offlined. Charges through an
    /// offline cgroup land on its nearest online ancestor.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    /// Is `self` `other` or one of its descendants
    /// (`mem_cgroup_is_descendant`)?
    pub fn is_descendant_of(&self, other: &MemCgroup) -> bool {
        let mut cur = self;
        loop {
            if core::ptr::eq(cur, other) {
                return true;
            }
            match cur.parent.as_deref() {
                Some(p) => cur = p,
                None => return false,
            }
        }
    }

    /// The objcg charges of this cgroup go through: its own while online,
    /// else the nearest online ancestor's (objcgs follow reparenting).
    /// `ENOENT` only once the tree that owned the cgroup has been dropped.
    pub fn obj_cgroup(&self) -> Result<ObjCgroupRef> {
        let mut cur = self;
        loop {
            if let Some(o) = cur.objcg.lock().as_ref() {
                return Ok(o.clone());
            }
            match cur.parent.as_deref() {
                Some(p) => cur = p,
                None => return Err(Error::ENOENT),
            }
        }
    }

    // ---- files --------------------------------------------------------

    /// `memory.current` in bytes (hierarchical). 0 once offline.
    pub fn memory_current(&self) -> u64 {
        self.usage.load(Ordering::Acquire)
    }

    /// `memory.max` in bytes, [`PAGE_COUNTER_MAX`] for `max`.
    pub fn memory_max(&self) -> u64 {
        self.max.load(Ordering::Acquire)
    }

    /// Writes `memory.max` (`"max"`, bytes, `K/M/G` suffixes; rounded down
    /// to pages). `EINVAL` on root or on bad input (nothing changes).
    ///
    /// Lowering the limit below the usage does not reclaim here; the next
    /// charge does (use [`crate::MemcgTree::memory_reclaim`] to shrink now).
    pub fn set_memory_max(&self, v: &str) -> Result<()> {
        if self.is_root() {
            return Err(Error::EINVAL);
        }
        let pages = parse_limit_pages(v)?;
        let bytes = if pages == PAGE_COUNTER_MAX {
            PAGE_COUNTER_MAX
        } else {
            pages.checked_mul(PAGE).ok_or(Error::EINVAL)?
        };
        self.max.store(bytes, Ordering::Release);
        Ok(())
    }

    /// `memory.zswap.current`: compressed bytes charged (hierarchical).
    pub fn zswap_current(&self) -> u64 {
        self.hier.zswap_b.load(Ordering::Acquire)
    }

    /// `memory.zswap.max` in pages, [`PAGE_COUNTER_MAX`] for `max`.
    pub fn zswap_max_pages(&self) -> u64 {
        self.zswap_max.load(Ordering::Acquire)
    }

    /// Writes `memory.zswap.max` (rounded down to pages). `EINVAL` on root
    /// (the file does not exist there) or on bad input.
    pub fn set_zswap_max(&self, v: &str) -> Result<()> {
        if self.is_root() {
            return Err(Error::EINVAL);
        }
        let pages = parse_limit_pages(v)?;
        self.zswap_max.store(pages, Ordering::Release);
        Ok(())
    }

    /// `memory.zswap.writeback` as written to this cgroup.
    pub fn zswap_writeback(&self) -> bool {
        self.zswap_writeback.load(Ordering::Acquire)
    }

    /// Writes `memory.zswap.writeback` (`"0"` or `"1"`, else `EINVAL`).
    ///
    /// Root has the file too, as in Linux since the file was merged
    /// (`CFTYPE_NOT_ON_ROOT` was dropped before v6.8): 0 on root disables
    /// writeback for the whole machine.
    pub fn set_zswap_writeback(&self, v: &str) -> Result<()> {
        let on = parse_bool01(v)?;
        self.zswap_writeback.store(on, Ordering::Release);
        Ok(())
    }

    /// `mem_cgroup_zswap_writeback_enabled()`: writeback is allowed only if
    /// this cgroup and every ancestor have `memory.zswap.writeback = 1`.
    pub fn zswap_writeback_enabled(&self) -> bool {
        let mut cur = self;
        loop {
            if !cur.zswap_writeback() {
                return false;
            }
            match cur.parent.as_deref() {
                Some(p) => cur = p,
                None => return true,
            }
        }
    }

    /// `memory.swap.current` in bytes (hierarchical).
    pub fn swap_current(&self) -> u64 {
        self.swap_usage.load(Ordering::Acquire).saturating_mul(PAGE)
    }

    /// `memory.swap.peak` in bytes.
    pub fn swap_peak(&self) -> u64 {
        self.swap_peak.load(Ordering::Acquire).saturating_mul(PAGE)
    }

    /// Hierarchical `memory.stat` (cgroup v2 semantics: includes all
    /// descendants, and the events of descendants that are gone).
    pub fn stat(&self) -> MemoryStat {
        let h = &self.hier;
        MemoryStat {
            memory_current: self.memory_current(),
            swap_current: self.swap_current(),
            swap_peak: self.swap_peak(),
            zswap: h.zswap_b.load(Ordering::Acquire),
            zswapped: h
                .zswapped_pages
                .load(Ordering::Acquire)
                .saturating_mul(PAGE),
            zswap_incomp: h
                .zswap_incomp_pages
                .load(Ordering::Acquire)
                .saturating_mul(PAGE),
            zswpin: h.zswpin.load(Ordering::Acquire),
            zswpout: h.zswpout.load(Ordering::Acquire),
            zswpwb: h.zswpwb.load(Ordering::Acquire),
            pswpin: h.pswpin.load(Ordering::Acquire),
            pswpout: h.pswpout.load(Ordering::Acquire),
            swpin_zero: h.swpin_zero.load(Ordering::Acquire),
            swpout_zero: h.swpout_zero.load(Ordering::Acquire),
        }
    }

    /// This cgroup's own counters (`memcg_page_state_local` /
    /// `memcg_events_local`). Page counters (`memory_current`,
    /// `swap_current`) are hierarchical by nature and reported as in
    /// [`MemCgroup::stat`]; `swap_peak` is 0.
    pub fn stat_local(&self) -> MemoryStat {
        let l = &self.local;
        MemoryStat {
            memory_current: self.memory_current(),
            swap_current: self.swap_current(),
            swap_peak: 0,
            zswap: l.zswap_b.load(Ordering::Acquire),
            zswapped: l
                .zswapped_pages
                .load(Ordering::Acquire)
                .saturating_mul(PAGE),
            zswap_incomp: l
                .zswap_incomp_pages
                .load(Ordering::Acquire)
                .saturating_mul(PAGE),
            zswpin: l.zswpin.load(Ordering::Acquire),
            zswpout: l.zswpout.load(Ordering::Acquire),
            zswpwb: l.zswpwb.load(Ordering::Acquire),
            pswpin: l.pswpin.load(Ordering::Acquire),
            pswpout: l.pswpout.load(Ordering::Acquire),
            swpin_zero: l.swpin_zero.load(Ordering::Acquire),
            swpout_zero: l.swpout_zero.load(Ordering::Acquire),
        }
    }

    // ---- charging -----------------------------------------------------

    /// `count_memcg_events()`: adds `n` to event `ev` of the effective cgroup
    /// (locally) and of it and every ancestor (hierarchically).
    pub fn count_event(&self, ev: MemcgEvent, n: u64) {
        if n == 0 {
            return;
        }
        with_online(self, |m| {
            add(m.local.event(ev), n);
            for_each_level(m, |l| add(l.hier.event(ev), n));
        });
    }

    /// Takes back what [`ObjCgroup::charge_zswap`] charged, `size` bytes
    /// for one stored page, from this cgroup's nearest online ancestor
    /// (itself while online): what an objcg made for this cgroup, or for
    /// any descendant of it that has gone offline since, uncharges now. So
    /// a user that keeps a reference to the cgroup (zswap keeps one per LRU
    /// record) need not keep the objcg: an objcg holds nothing but the
    /// cgroup it charges.
    pub fn uncharge_zswap(&self, size: usize) {
        with_online(self, |m| {
            for_each_level(m, |l| sub(&l.usage, size as u64));
            zswap_gauges(m, size, sub);
        });
    }

    /// `mem_cgroup_try_charge_swap()`: charges `nr_pages` of swap to this
    /// cgroup (effective cgroup and ancestors) and raises `memory.swap.peak`.
    /// The swap slots record this cgroup's id, so the id is pinned until
    /// [`MemCgroup::swap_uncharge`] of the same pages. Cannot fail: there is
    /// no `memory.swap.max` here.
    pub fn swap_charge(&self, nr_pages: u64) {
        if nr_pages == 0 {
            return;
        }
        add(&self.id_refs, nr_pages);
        with_online(self, |m| {
            for_each_level(m, |l| {
                let prev = l
                    .swap_usage
                    .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
                        Some(v.saturating_add(nr_pages))
                    })
                    .unwrap_or(0);
                l.swap_peak
                    .fetch_max(prev.saturating_add(nr_pages), Ordering::AcqRel);
            });
        });
    }

    /// `mem_cgroup_uncharge_swap()`: the inverse of
    /// [`MemCgroup::swap_charge`] on the same cgroup (after an offline the
    /// pages are uncharged from the ancestor that inherited them).
    pub fn swap_uncharge(&self, nr_pages: u64) {
        if nr_pages == 0 {
            return;
        }
        with_online(self, |m| {
            for_each_level(m, |l| sub(&l.swap_usage, nr_pages));
        });
        sub(&self.id_refs, nr_pages);
    }

    pub(crate) fn id_refs(&self) -> u64 {
        self.id_refs.load(Ordering::Acquire)
    }

    pub(crate) fn id_get(&self, nr_pages: u64) {
        add(&self.id_refs, nr_pages);
    }

    pub(crate) fn id_put(&self, nr_pages: u64) {
        sub(&self.id_refs, nr_pages);
    }

    /// Lowers `memory.swap.peak` to the current usage (writing to the file).
    pub fn reset_swap_peak(&self) {
        self.swap_peak
            .store(self.swap_usage.load(Ordering::Acquire), Ordering::Release);
    }

    /// One attempt of a limited page charge of `bytes`: on the effective
    /// cgroup and every ancestor, each level adds only if it stays within its
    /// `memory.max`; on failure the levels already charged are rolled back
    /// and the cgroup whose limit refused is returned.
    pub(crate) fn try_charge_once(
        this: &MemcgRef,
        bytes: u64,
    ) -> core::result::Result<(), MemcgRef> {
        with_online_ref(this, |m| {
            let mut cur = Some(m);
            while let Some(level) = cur {
                if !try_add(&level.usage, bytes, level.max.load(Ordering::Acquire)) {
                    // Roll back the levels below `level`.
                    let mut undo = Some(m);
                    while let Some(u) = undo {
                        if core::ptr::eq::<MemCgroup>(&**u, &**level) {
                            break;
                        }
                        sub(&u.usage, bytes);
                        undo = u.parent.as_ref();
                    }
                    return Err(level.clone());
                }
                cur = level.parent.as_ref();
            }
            Ok(())
        })
    }

    /// Charges `bytes` to the effective cgroup and every ancestor, ignoring
    /// `memory.max`: the forced page charge of a `Gfp::NOFAIL` caller.
    pub(crate) fn force_charge_ref(this: &MemcgRef, bytes: u64) {
        with_online_ref(this, |m| MemCgroup::force_charge(m, bytes));
    }

    /// A charge that ignores `memory.max` (Linux's forced charge from
    /// `PF_MEMALLOC` context, which is where zswap charges its objects).
    fn force_charge(m: &MemCgroup, bytes: u64) {
        for_each_level(m, |l| add(&l.usage, bytes));
    }

    /// Removes `bytes` from the effective cgroup and its ancestors.
    pub(crate) fn uncharge_bytes(&self, bytes: u64) {
        with_online(self, |m| for_each_level(m, |l| sub(&l.usage, bytes)));
    }

    // ---- offline ------------------------------------------------------

    /// Takes the cgroup offline and passes what it holds to `parent`. Called
    /// by the tree with the tree lock held, so nothing here allocates:
    /// `moving` (empty) has room for [`MemCgroup::objcg_count`] objcgs, and
    /// either the parent's objcg list has room for them too or
    /// `parent_spare` (empty) has room for the list plus them.
    pub(crate) fn offline_locked(
        &self,
        parent: &MemcgRef,
        moving: &mut Vec<ObjCgroupRef>,
        parent_spare: &mut Vec<ObjCgroupRef>,
    ) {
        let mut gate = self.gate.write();
        if !*gate {
            return;
        }
        *gate = false;
        self.online.store(false, Ordering::Release);
        // Page counters: the parent's level already includes ours; drop ours.
        self.usage.store(0, Ordering::Release);
        self.swap_usage.store(0, Ordering::Release);
        // Gauges: the parent now owns them locally; our hierarchical values
        // are included in the parent's already.
        for (mine, theirs) in self.local.gauges().into_iter().zip(parent.local.gauges()) {
            add(theirs, mine.swap(0, Ordering::AcqRel));
        }
        for g in self.hier.gauges() {
            g.store(0, Ordering::Release);
        }
        // Objcgs: ours and those reparented to us now charge the parent
        // (memcg_reparent_objcgs).
        if let Some(own) = self.objcg.lock().take() {
            moving.push(own);
        }
        moving.append(&mut self.objcg_list.lock());
        for o in moving.iter() {
            *o.memcg.lock() = parent.clone();
        }
        let mut plist = parent.objcg_list.lock();
        if plist.capacity() - plist.len() < moving.len() {
            parent_spare.append(&mut plist);
            core::mem::swap(&mut *plist, parent_spare);
        }
        plist.append(moving);
        drop(plist);
        drop(gate);
    }

    /// Free room in the objcg list (for the tree's reservation).
    pub(crate) fn objcg_list_room(&self) -> (usize, usize) {
        let l = self.objcg_list.lock();
        (l.len(), l.capacity())
    }

    pub(crate) fn objcg_count(&self) -> usize {
        self.objcg_list.lock().len() + usize::from(self.objcg.lock().is_some())
    }

    /// Drops the memcg <-> objcg reference cycles (tree teardown).
    pub(crate) fn break_objcg_cycles(&self) {
        let own = self.objcg.lock().take();
        let list = core::mem::take(&mut *self.objcg_list.lock());
        drop(own);
        drop(list);
    }
}

/// Runs `f` on the effective cgroup of `start` (itself if online, else its
/// nearest online ancestor) with that cgroup's gate read-locked, so it cannot
/// go offline while `f` runs. `f` must not block or call out.
fn with_online<'a, R>(start: &'a MemCgroup, f: impl FnOnce(&'a MemCgroup) -> R) -> R {
    let mut cur = start;
    loop {
        let gate = cur.gate.read();
        match (&cur.parent, *gate) {
            (Some(p), false) => {
                drop(gate);
                cur = p;
            }
            _ => {
                let r = f(cur);
                drop(gate);
                return r;
            }
        }
    }
}

/// [`with_online`] for callers that need the effective cgroup's reference.
fn with_online_ref<'a, R>(start: &'a MemcgRef, f: impl FnOnce(&'a MemcgRef) -> R) -> R {
    let mut cur = start;
    loop {
        let gate = cur.gate.read();
        match (&cur.parent, *gate) {
            (Some(p), false) => {
                drop(gate);
                cur = p;
            }
            _ => {
                let r = f(cur);
                drop(gate);
                return r;
            }
        }
    }
}

/// One stored page of `size` compressed bytes in the zswap gauges of `m`
/// (local) and of `m` and its ancestors (hierarchical): `zswap` bytes,
/// `zswapped` pages and, for a page stored raw, `zswap_incomp` pages. `op`
/// is [`add`] (a charge) or [`sub`] (an uncharge).
fn zswap_gauges(m: &MemCgroup, size: usize, op: fn(&AtomicU64, u64)) {
    let bytes = size as u64;
    let incomp = size == PAGE_SIZE;
    op(&m.local.zswap_b, bytes);
    op(&m.local.zswapped_pages, 1);
    if incomp {
        op(&m.local.zswap_incomp_pages, 1);
    }
    for_each_level(m, |l| {
        op(&l.hier.zswap_b, bytes);
        op(&l.hier.zswapped_pages, 1);
        if incomp {
            op(&l.hier.zswap_incomp_pages, 1);
        }
    });
}

/// Calls `f` on `m` and each of its ancestors, bottom-up.
fn for_each_level(m: &MemCgroup, mut f: impl FnMut(&MemCgroup)) {
    let mut cur = Some(m);
    while let Some(l) = cur {
        f(l);
        cur = l.parent.as_deref();
    }
}

/// An object cgroup (`struct obj_cgroup`): what sub-page objects (zswap's
/// compressed pages) are charged through. Created with its memcg; when the
/// memcg goes offline, the objcg is reparented and from then on charges the
/// parent, so objects stored earlier uncharge the right cgroup later.
///
/// # Invariants
///
/// `memcg` is the cgroup the objcg was created for while it is online, then
/// the ancestor it was reparented to.
pub struct ObjCgroup {
    memcg: Mutex<MemcgRef>,
}

impl fmt::Debug for ObjCgroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjCgroup")
            .field("memcg", &self.memcg().id())
            .finish()
    }
}

impl ObjCgroup {
    /// `obj_cgroup_memcg()`: the cgroup this objcg charges now.
    pub fn memcg(&self) -> MemcgRef {
        self.memcg.lock().clone()
    }

    /// `obj_cgroup_may_zswap()`: may one more page be stored for this
    /// objcg? Walks the memcg and its ancestors, root excluded; refuses at
    /// `memory.zswap.max = 0`, or when `zswap_bytes / PAGE_SIZE >= max`
    /// (page granularity; the check is before compression, so usage can
    /// overshoot by less than one store per racing CPU, as in Linux).
    pub fn may_zswap(&self) -> bool {
        let memcg = self.memcg();
        let mut cur: &MemCgroup = &memcg;
        while let Some(parent) = cur.parent.as_deref() {
            let max = cur.zswap_max_pages();
            if max != PAGE_COUNTER_MAX {
                if max == 0 {
                    return false;
                }
                if cur.zswap_current() / PAGE >= max {
                    return false;
                }
            }
            cur = parent;
        }
        true
    }

    /// `obj_cgroup_charge_zswap()`: charges `size` compressed bytes for one
    /// stored page: `memory.current` (+size bytes, forced: may exceed
    /// `memory.max`, as Linux's charge from reclaim context does),
    /// `zswap` (+size), `zswapped` (+1 page) and, when the page was stored
    /// raw (`size == PAGE_SIZE`), `zswap_incomp` (+1 page). Exact, no
    /// batching.
    pub fn charge_zswap(&self, size: usize) {
        let memcg = self.memcg();
        let bytes = size as u64;
        with_online(&memcg, |m| {
            MemCgroup::force_charge(m, bytes);
            zswap_gauges(m, size, add);
        });
    }

    /// `obj_cgroup_uncharge_zswap()`: the exact inverse of
    /// [`ObjCgroup::charge_zswap`] with the same `size`.
    pub fn uncharge_zswap(&self, size: usize) {
        self.memcg().uncharge_zswap(size);
    }
}
