//! Unit tests of the whole crate (behaviour a user relies on).

extern crate std;

use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use std::string::ToString;

use kbase::{Error, Gfp, KArc, PAGE_SIZE};

use crate::*;

const P: u64 = PAGE_SIZE as u64;

fn tree() -> MemcgTree {
    MemcgTree::new(Gfp::KERNEL).unwrap()
}

/// Records calls; frees `free_per_call` pages of `victim` per call.
struct CountingHook<'a> {
    tree: &'a MemcgTree,
    calls: Cell<u32>,
    asked_for: RefCell<Vec<(u32, u64)>>,
    victim: Option<MemcgRef>,
    free_per_call: u64,
    claim: u64,
}

impl<'a> CountingHook<'a> {
    fn new(tree: &'a MemcgTree) -> Self {
        CountingHook {
            tree,
            calls: Cell::new(0),
            asked_for: RefCell::new(Vec::new()),
            victim: None,
            free_per_call: 0,
            claim: 0,
        }
    }
}

impl ReclaimHook for CountingHook<'_> {
    fn reclaim(&self, memcg: &MemcgRef, nr_pages: u64, _gfp: Gfp) -> u64 {
        self.calls.set(self.calls.get() + 1);
        self.asked_for.borrow_mut().push((memcg.id(), nr_pages));
        if let Some(v) = &self.victim {
            self.tree.uncharge(v, self.free_per_call);
            return self.free_per_call;
        }
        self.claim
    }
}

// ---- hierarchy ----------------------------------------------------------

#[test]
fn root_is_id_1_and_children_get_small_ids() {
    let t = tree();
    assert_eq!(t.root().id(), ROOT_ID);
    assert!(t.root().is_online());
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    assert_eq!((a.id(), b.id()), (2, 3));
    assert_eq!(b.path(), "a/b");
    assert_eq!(b.name(), "b");
    assert!(KArc::ptr_eq(&b.parent().unwrap(), &a));
    assert!(KArc::ptr_eq(&t.lookup("/a/b").unwrap(), &b));
    assert!(KArc::ptr_eq(&t.lookup("").unwrap(), &t.root()));
    assert!(KArc::ptr_eq(&t.get(3).unwrap(), &b));
    assert!(t.get(0).is_none());
    assert!(t.get(99).is_none());
    assert!(b.is_descendant_of(&t.root()));
    assert!(!a.is_descendant_of(&b));
}

#[test]
fn bad_paths_and_names_are_refused_and_change_nothing() {
    let t = tree();
    t.create("a", Gfp::KERNEL).unwrap();
    assert_eq!(t.create("a", Gfp::KERNEL).unwrap_err(), Error::EEXIST);
    assert_eq!(t.create("", Gfp::KERNEL).unwrap_err(), Error::EEXIST);
    assert_eq!(t.create("x/y", Gfp::KERNEL).unwrap_err(), Error::ENOENT);
    let long = "n".repeat(NAME_MAX + 1);
    for bad in ["a//b", "a/", "./a", "a/..", "a/b\0c", long.as_str()] {
        assert_eq!(
            t.create(bad, Gfp::KERNEL).unwrap_err(),
            Error::EINVAL,
            "{bad:?}"
        );
    }
    assert_eq!(t.lookup("nope").unwrap_err(), Error::ENOENT);
    assert_eq!(t.lookup("a//").unwrap_err(), Error::EINVAL);
    assert_eq!(t.nr_ids(), 2);
}

#[test]
fn offline_and_remove_refuse_bad_requests() {
    let t = tree();
    t.create("a", Gfp::KERNEL).unwrap();
    t.create("a/b", Gfp::KERNEL).unwrap();
    assert_eq!(t.offline("").unwrap_err(), Error::EINVAL);
    assert_eq!(t.remove("/").unwrap_err(), Error::EINVAL);
    assert_eq!(t.offline("a").unwrap_err(), Error::EBUSY);
    assert_eq!(t.remove("a").unwrap_err(), Error::EBUSY);
    assert_eq!(t.offline("zz").unwrap_err(), Error::ENOENT);
    assert!(t.lookup("a").unwrap().is_online());
    // An offline child no longer blocks the parent's offline, but still
    // blocks its removal.
    t.offline("a/b").unwrap();
    assert_eq!(t.offline("a/b").unwrap_err(), Error::EINVAL);
    assert_eq!(t.create("a/b/c", Gfp::KERNEL).unwrap_err(), Error::ENOENT);
    t.offline("a").unwrap();
    assert_eq!(t.remove("a").unwrap_err(), Error::EBUSY);
    assert!(!t.remove("a/b").unwrap().newly_offline);
    t.remove("a").unwrap();
    let d = t.create("d", Gfp::KERNEL).unwrap();
    let off = t.remove("d").unwrap();
    assert!(off.newly_offline && !d.is_online());
    assert_eq!(t.lookup("a").unwrap_err(), Error::ENOENT);
}

#[test]
fn ids_are_reused_only_when_the_cgroup_is_fully_gone() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    assert_eq!(a.id(), 2);
    t.remove("a").unwrap();
    // Still referenced: the id stays taken and `get` still finds it.
    assert!(KArc::ptr_eq(&t.get(2).unwrap(), &a));
    let b = t.create("a", Gfp::KERNEL).unwrap();
    assert_eq!(b.id(), 3, "name reusable at once, id not");
    drop(a);
    assert!(t.get(2).is_none());
    let c = t.create("c", Gfp::KERNEL).unwrap();
    assert_eq!(c.id(), 2);

    // Pages charged through an id pin it even without references.
    t.try_charge(&c, 2, Gfp::KERNEL, &NoReclaim).unwrap();
    t.remove("c").unwrap();
    drop(c);
    let c2 = t.get(2).expect("pinned id still resolves");
    assert!(!c2.is_online());
    assert_eq!(t.create("d", Gfp::KERNEL).unwrap().id(), 4);
    t.uncharge(&c2, 2);
    drop(c2);
    assert!(t.get(2).is_none());
    assert_eq!(t.create("e", Gfp::KERNEL).unwrap().id(), 2);
}

#[test]
fn swap_charge_pins_the_id_of_a_removed_cgroup() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    b.swap_charge(2);
    let id = b.id();
    t.remove("a/b").unwrap();
    drop(b);
    // The swap slots still record `id`: it must still resolve, to b, and
    // uncharging through it must hit a (which inherited the charge).
    let b = t.get(id).unwrap();
    assert_eq!(b.path(), "a/b");
    assert_eq!(a.swap_current(), 2 * P);
    b.swap_uncharge(2);
    assert_eq!(a.swap_current(), 0);
    drop(b);
    assert!(t.get(id).is_none());
}

// ---- page counters, limits, reclaim --------------------------------------

#[test]
fn charges_are_hierarchical_and_limited_at_every_level() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    let c = t.create("a/c", Gfp::KERNEL).unwrap();
    a.set_memory_max("16K").unwrap();
    t.try_charge(&b, 3, Gfp::KERNEL, &NoReclaim).unwrap();
    assert_eq!(b.memory_current(), 3 * P);
    assert_eq!(a.memory_current(), 3 * P);
    assert_eq!(t.root().memory_current(), 3 * P);
    // c has no limit of its own but a's limit applies.
    assert_eq!(
        t.try_charge(&c, 2, Gfp::KERNEL, &NoReclaim),
        Err(Error::ENOMEM)
    );
    assert_eq!(c.memory_current(), 0, "failed charge rolled back");
    assert_eq!(a.memory_current(), 3 * P);
    t.try_charge(&c, 1, Gfp::KERNEL, &NoReclaim).unwrap();
    assert_eq!(a.memory_current(), a.memory_max());
    t.uncharge(&b, 3);
    t.uncharge(&c, 1);
    assert_eq!(t.root().memory_current(), 0);
}

#[test]
fn memory_max_parses_like_cgroup_v2_and_bad_input_changes_nothing() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    assert_eq!(a.memory_max(), PAGE_COUNTER_MAX);
    a.set_memory_max("8M").unwrap();
    assert_eq!(a.memory_max(), 8 << 20);
    a.set_memory_max("10000").unwrap();
    assert_eq!(a.memory_max(), 2 * P, "rounded down to pages");
    for bad in ["-1", "lots", "1Q", ""] {
        assert_eq!(a.set_memory_max(bad), Err(Error::EINVAL));
        assert_eq!(a.memory_max(), 2 * P);
    }
    a.set_memory_max("max\n").unwrap();
    assert_eq!(a.memory_max(), PAGE_COUNTER_MAX);
    assert_eq!(t.root().set_memory_max("1G"), Err(Error::EINVAL));
}

#[test]
fn hook_runs_on_the_cgroup_over_its_limit_and_frees_room() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    let c = t.create("a/c", Gfp::KERNEL).unwrap();
    a.set_memory_max("16K").unwrap();
    t.try_charge(&c, 4, Gfp::KERNEL, &NoReclaim).unwrap();
    let mut hook = CountingHook::new(&t);
    hook.victim = Some(c.clone());
    hook.free_per_call = 1;
    t.try_charge(&b, 2, Gfp::KERNEL, &hook).unwrap();
    assert_eq!(hook.calls.get(), 2);
    assert_eq!(
        hook.asked_for.borrow().as_slice(),
        &[(a.id(), 2), (a.id(), 2)]
    );
    assert_eq!(a.memory_current(), 4 * P);
    assert_eq!(b.memory_current(), 2 * P);
}

#[test]
fn hook_that_frees_nothing_gives_enomem_after_bounded_calls() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    a.set_memory_max("0").unwrap();
    let hook = CountingHook::new(&t);
    assert_eq!(t.try_charge(&a, 1, Gfp::KERNEL, &hook), Err(Error::ENOMEM));
    assert_eq!(hook.calls.get(), MAX_NO_PROGRESS);
    // A hook that claims progress but never makes room: MAX_RECLAIM_RETRIES.
    let mut liar = CountingHook::new(&t);
    liar.claim = 1;
    assert_eq!(t.try_charge(&a, 1, Gfp::KERNEL, &liar), Err(Error::ENOMEM));
    assert_eq!(liar.calls.get(), MAX_RECLAIM_RETRIES);
    assert_eq!(a.memory_current(), 0);
}

/// Reclaim context (PF_MEMALLOC: NOFAIL without DIRECT_RECLAIM) and
/// __GFP_NOFAIL charges go past memory.max instead of failing; the forced
/// pages are uncharged like any others.
#[test]
fn nofail_charges_are_forced_past_memory_max() {
    let t = tree();
    let p = t.create("p", Gfp::KERNEL).unwrap();
    let a = t.create("p/a", Gfp::KERNEL).unwrap();
    p.set_memory_max("4096").unwrap();
    let hook = CountingHook::new(&t);
    t.try_charge(&a, 1, Gfp::KERNEL, &hook).unwrap();
    let memalloc = Gfp::NOWAIT | Gfp::NOFAIL;
    t.try_charge(&a, 2, memalloc, &hook).unwrap();
    assert_eq!(hook.calls.get(), 0, "reclaim context never reclaims again");
    assert_eq!(a.memory_current(), 3 * 4096);
    assert_eq!(p.memory_current(), 3 * 4096);
    // __GFP_NOFAIL with reclaim allowed: reclaim is tried first, then forced.
    t.try_charge(&a, 1, Gfp::KERNEL | Gfp::NOFAIL, &hook)
        .unwrap();
    assert_eq!(hook.calls.get(), MAX_NO_PROGRESS);
    assert_eq!(p.memory_current(), 4 * 4096);
    // Without NOFAIL the limit still holds.
    assert_eq!(t.try_charge(&a, 1, Gfp::NOWAIT, &hook), Err(Error::ENOMEM));
    t.uncharge(&a, 4);
    assert_eq!((a.memory_current(), p.memory_current()), (0, 0));
}

#[test]
fn charge_without_direct_reclaim_never_calls_the_hook() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    a.set_memory_max("0").unwrap();
    let mut hook = CountingHook::new(&t);
    hook.claim = 1;
    assert_eq!(t.try_charge(&a, 1, Gfp::NOWAIT, &hook), Err(Error::ENOMEM));
    assert_eq!(hook.calls.get(), 0);
    assert_eq!(
        t.try_charge(&a, 1, Gfp::KERNEL | Gfp::NORETRY, &hook),
        Err(Error::ENOMEM)
    );
    assert_eq!(hook.calls.get(), 1);
}

/// A hook that re-enters the tree: charges, uncharges, reads, iterates,
/// charges zswap through an objcg, and even nests a limited charge.
struct ReentrantHook<'a> {
    tree: &'a MemcgTree,
    other: MemcgRef,
    victim: MemcgRef,
    depth: Cell<u32>,
}

impl ReclaimHook for ReentrantHook<'_> {
    fn reclaim(&self, memcg: &MemcgRef, nr_pages: u64, gfp: Gfp) -> u64 {
        self.depth.set(self.depth.get() + 1);
        let t = self.tree;
        let _ = memcg.stat();
        let mut it = t.iter_next(None);
        while let Some(m) = it {
            it = t.iter_next(Some(&m));
        }
        let objcg = self.victim.obj_cgroup().unwrap();
        objcg.charge_zswap(100);
        objcg.uncharge_zswap(100);
        // Control operations too: tree lock and another cgroup's gate.
        let name = std::format!("tmp{}", self.depth.get());
        let tmp = t.create(&name, Gfp::KERNEL).unwrap();
        t.try_charge(&tmp, 1, gfp, &NoReclaim).unwrap();
        t.remove(&name).unwrap();
        t.uncharge(&tmp, 1);
        // Nested limited charge on the same cgroup over its limit: fails
        // (no deadlock) and recurses at most once more.
        if self.depth.get() < 2 {
            let _ = t.try_charge(memcg, 1, gfp, self);
        }
        t.try_charge(&self.other, 1, gfp, &NoReclaim).unwrap();
        t.uncharge(&self.other, 1);
        t.uncharge(&self.victim, nr_pages);
        nr_pages
    }
}

#[test]
fn reentrant_hook_does_not_deadlock() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    let other = t.create("other", Gfp::KERNEL).unwrap();
    a.set_memory_max("8K").unwrap();
    t.try_charge(&b, 2, Gfp::KERNEL, &NoReclaim).unwrap();
    let hook = ReentrantHook {
        tree: &t,
        other: other.clone(),
        victim: b.clone(),
        depth: Cell::new(0),
    };
    t.try_charge(&a, 1, Gfp::KERNEL, &hook).unwrap();
    assert!(hook.depth.get() >= 1);
    assert!(a.memory_current() <= a.memory_max());
    assert_eq!(other.memory_current(), 0);
}

#[test]
fn memory_reclaim_returns_eagain_when_short() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    t.try_charge(&a, 100, Gfp::KERNEL, &NoReclaim).unwrap();
    let mut hook = CountingHook::new(&t);
    hook.victim = Some(a.clone());
    hook.free_per_call = 10;
    t.memory_reclaim(&a, 40 * P, &hook).unwrap();
    assert_eq!(hook.calls.get(), 4);
    assert_eq!(a.memory_current(), 60 * P);

    let none = CountingHook::new(&t);
    assert_eq!(t.memory_reclaim(&a, P, &none), Err(Error::EAGAIN));
    assert_eq!(none.calls.get(), MAX_RECLAIM_RETRIES + 1);
    // Byte values round up to pages and are asked in SWAP_CLUSTER_MAX batches.
    let mut big = CountingHook::new(&t);
    big.claim = 1000;
    t.memory_reclaim_str(&a, "200K", &big).unwrap();
    assert_eq!(big.asked_for.borrow()[0].1, SWAP_CLUSTER_MAX);
    assert_eq!(t.memory_reclaim_str(&a, "-1", &big), Err(Error::EINVAL));
    t.memory_reclaim(&a, 0, &none).unwrap();
}

#[test]
fn write_memory_max_reclaims_down_to_the_new_limit() {
    // A reclaim that reports progress but frees nothing would make the
    // write loop forever (as Linux's memory_max_write): fail instead.
    let _watchdog = kbase::testing::watchdog(
        "write_memory_max_reclaims_down_to_the_new_limit",
        std::time::Duration::from_secs(60),
    );
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    t.try_charge(&a, 10, Gfp::KERNEL, &NoReclaim).unwrap();
    let mut hook = CountingHook::new(&t);
    hook.victim = Some(a.clone());
    hook.free_per_call = 3;
    t.write_memory_max(&a, "16K", &hook).unwrap();
    assert_eq!(a.memory_max(), 4 * P);
    assert!(a.memory_current() <= 4 * P);
    assert_eq!(hook.calls.get(), 2);
    assert_eq!(hook.asked_for.borrow()[0], (a.id(), 6));
    // Nothing reclaimable: the write still succeeds, bounded hook calls.
    let none = CountingHook::new(&t);
    t.write_memory_max(&a, "0", &none).unwrap();
    assert_eq!(none.calls.get(), MAX_RECLAIM_RETRIES + 1);
    assert_eq!(t.write_memory_max(&a, "x", &none), Err(Error::EINVAL));
    assert_eq!(a.memory_max(), 0);
}

// ---- zswap controls --------------------------------------------------------

#[test]
fn zswap_max_zero_refuses_at_once() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let objcg = a.obj_cgroup().unwrap();
    assert!(objcg.may_zswap());
    a.set_zswap_max("0").unwrap();
    assert!(!objcg.may_zswap());
    a.set_zswap_max("max").unwrap();
    assert!(objcg.may_zswap());
}

#[test]
fn zswap_max_is_checked_at_page_granularity() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    a.set_zswap_max("8K").unwrap();
    assert_eq!(a.zswap_max_pages(), 2);
    let objcg = a.obj_cgroup().unwrap();
    objcg.charge_zswap(PAGE_SIZE);
    objcg.charge_zswap(PAGE_SIZE - 1);
    assert_eq!(a.zswap_current(), 2 * P - 1);
    assert!(objcg.may_zswap(), "8191 bytes is 1 page < 2");
    objcg.charge_zswap(1);
    assert!(!objcg.may_zswap(), "2 pages >= 2");
    objcg.uncharge_zswap(1);
    assert!(objcg.may_zswap());
}

#[test]
fn zswap_max_applies_from_ancestors_but_not_root() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    let ob = b.obj_cgroup().unwrap();
    a.set_zswap_max("4K").unwrap();
    assert!(ob.may_zswap());
    ob.charge_zswap(P as usize);
    assert!(!ob.may_zswap());
    assert!(!a.obj_cgroup().unwrap().may_zswap());
    assert_eq!(t.root().set_zswap_max("0"), Err(Error::EINVAL));
    assert!(t.root().obj_cgroup().unwrap().may_zswap());
    assert_eq!(a.set_zswap_max("1X"), Err(Error::EINVAL));
    assert_eq!(a.zswap_max_pages(), 1);
}

#[test]
fn writeback_disable_is_inherited() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    assert!(b.zswap_writeback_enabled());
    a.set_zswap_writeback("0").unwrap();
    b.set_zswap_writeback("1").unwrap();
    assert!(b.zswap_writeback());
    assert!(!b.zswap_writeback_enabled(), "parent 0 wins over child 1");
    a.set_zswap_writeback("1").unwrap();
    assert!(b.zswap_writeback_enabled());
    t.root().set_zswap_writeback("0").unwrap();
    assert!(!b.zswap_writeback_enabled());
    assert_eq!(a.set_zswap_writeback("2"), Err(Error::EINVAL));
    assert!(a.zswap_writeback());
}

#[test]
fn zswap_charges_are_exact_bytes_in_memory_current_and_stat() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    let o = b.obj_cgroup().unwrap();
    o.charge_zswap(1000);
    o.charge_zswap(PAGE_SIZE);
    o.charge_zswap(3);
    let s = b.stat();
    assert_eq!(s.memory_current, 1000 + P + 3);
    assert_eq!(s.zswap, 1000 + P + 3);
    assert_eq!(s.zswapped, 3 * P);
    assert_eq!(s.zswap_incomp, P);
    assert_eq!(a.stat().zswap, s.zswap);
    assert_eq!(a.stat_local().zswap, 0);
    assert_eq!(t.root().memory_current(), s.memory_current);
    o.uncharge_zswap(PAGE_SIZE);
    o.uncharge_zswap(3);
    o.uncharge_zswap(1000);
    assert_eq!(b.stat(), MemoryStat::default());
    assert_eq!(t.root().memory_current(), 0);
}

#[test]
fn zswap_charge_is_forced_past_memory_max() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    a.set_memory_max("4K").unwrap();
    t.try_charge(&a, 1, Gfp::KERNEL, &NoReclaim).unwrap();
    a.obj_cgroup().unwrap().charge_zswap(10);
    assert_eq!(a.memory_current(), P + 10);
}

// ---- stats -------------------------------------------------------------------

#[test]
fn events_are_hierarchical_and_local() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    b.count_event(MemcgEvent::Zswpout, 3);
    b.count_event(MemcgEvent::Zswpin, 1);
    a.count_event(MemcgEvent::Zswpwb, 2);
    a.count_event(MemcgEvent::Pswpout, 2);
    b.count_event(MemcgEvent::Pswpin, 5);
    assert_eq!(a.stat().zswpout, 3);
    assert_eq!(a.stat_local().zswpout, 0);
    assert_eq!(a.stat().zswpwb, 2);
    assert_eq!(b.stat().zswpwb, 0);
    assert_eq!(t.root().stat().pswpin, 5);
    assert_eq!(t.root().stat().pswpout, 2);
    assert_eq!(b.stat_local().zswpin, 1);
    // Events of an offlined and removed child stay in the parent's stat.
    t.offline("a/b").unwrap();
    t.remove("a/b").unwrap();
    assert_eq!(a.stat().zswpout, 3);
    b.count_event(MemcgEvent::Zswpout, 1);
    assert_eq!(a.stat_local().zswpout, 1, "counted on the effective cgroup");
}

#[test]
fn memory_stat_text_uses_linux_keys() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    a.obj_cgroup().unwrap().charge_zswap(PAGE_SIZE);
    a.count_event(MemcgEvent::Zswpout, 1);
    let text = a.stat().to_string();
    assert!(text.contains("zswap 4096\n"), "{text}");
    assert!(text.contains("zswapped 4096\n"));
    assert!(text.contains("zswap_incomp 4096\n"));
    assert!(text.contains("zswpout 1\n"));
    assert!(text.contains("zswpwb 0\n"));
}

#[test]
fn swap_current_and_peak() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    b.swap_charge(3);
    b.swap_uncharge(2);
    b.swap_charge(1);
    assert_eq!(b.swap_current(), 2 * P);
    assert_eq!(a.swap_current(), 2 * P);
    assert_eq!(a.swap_peak(), 3 * P);
    assert_eq!(a.stat().swap_peak, 3 * P);
    a.reset_swap_peak();
    assert_eq!(a.swap_peak(), 2 * P);
    b.swap_uncharge(2);
    assert_eq!(t.root().swap_current(), 0);
}

// ---- offline / reparenting -----------------------------------------------------

#[test]
fn offline_moves_charges_and_objcg_to_parent() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    let ob = b.obj_cgroup().unwrap();
    t.try_charge(&b, 2, Gfp::KERNEL, &NoReclaim).unwrap();
    ob.charge_zswap(500);
    ob.charge_zswap(PAGE_SIZE);
    b.swap_charge(4);
    a.count_event(MemcgEvent::Zswpout, 1);
    let before = a.stat();

    let off = t.offline("a/b").unwrap();
    assert!(off.newly_offline);
    assert!(KArc::ptr_eq(&off.memcg, &b));
    assert!(KArc::ptr_eq(&off.parent, &a));
    assert!(!b.is_online());
    // The child's counters are gone, the parent's are unchanged in total
    // and now owned locally.
    assert_eq!(b.memory_current(), 0);
    assert_eq!(b.zswap_current(), 0);
    assert_eq!(b.swap_current(), 0);
    assert_eq!(a.stat(), before);
    let local = a.stat_local();
    assert_eq!(local.zswap, 500 + P);
    assert_eq!(local.zswapped, 2 * P);
    assert_eq!(local.zswap_incomp, P);
    // Objcg reparented: old objects uncharge the parent, new ones charge it.
    assert!(KArc::ptr_eq(&ob.memcg(), &a));
    assert!(KArc::ptr_eq(
        &b.obj_cgroup().unwrap(),
        &a.obj_cgroup().unwrap()
    ));
    assert_eq!(t.nr_objcgs(&a), 2);
    ob.charge_zswap(7);
    assert_eq!(a.zswap_current(), 507 + P);
    ob.uncharge_zswap(7);
    ob.uncharge_zswap(500);
    ob.uncharge_zswap(PAGE_SIZE);
    // Page and swap uncharges through the dead child hit the parent.
    t.uncharge(&b, 2);
    b.swap_uncharge(4);
    assert_eq!(a.stat_local().zswap, 0);
    assert_eq!(a.memory_current(), 0);
    assert_eq!(a.swap_current(), 0);
    assert_eq!(t.root().memory_current(), 0);
    // And a charge naming the dead child lands on the parent.
    t.try_charge(&b, 1, Gfp::KERNEL, &NoReclaim).unwrap();
    assert_eq!((b.memory_current(), a.memory_current()), (0, P));
}

#[test]
fn nested_offline_reparents_to_the_nearest_online_ancestor() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    let c = t.create("a/b/c", Gfp::KERNEL).unwrap();
    let oc = c.obj_cgroup().unwrap();
    oc.charge_zswap(100);
    t.offline("a/b/c").unwrap();
    assert!(KArc::ptr_eq(&oc.memcg(), &b));
    t.offline("a/b").unwrap();
    assert!(KArc::ptr_eq(&oc.memcg(), &a));
    assert_eq!(t.nr_objcgs(&a), 3);
    assert_eq!(a.stat_local().zswap, 100);
    // A stale reference to the first level still resolves upwards.
    c.count_event(MemcgEvent::Zswpin, 1);
    assert_eq!(a.stat_local().zswpin, 1);
    oc.uncharge_zswap(100);
    assert_eq!(t.root().memory_current(), 0);
    t.remove("a/b/c").unwrap();
    t.remove("a/b").unwrap();
    t.remove("a").unwrap();
    assert_eq!(t.nr_objcgs(&t.root()), 4);
}

// ---- iteration -------------------------------------------------------------------

fn pass(t: &MemcgTree) -> Vec<std::string::String> {
    let mut out = Vec::new();
    let mut it = t.iter_next(None);
    while let Some(m) = it {
        out.push(m.path().to_string());
        it = t.iter_next(Some(&m));
    }
    out
}

#[test]
fn iteration_is_preorder_and_skips_offline() {
    let t = tree();
    for p in ["a", "a/x", "a/x/y", "b", "a/z", "c"] {
        t.create(p, Gfp::KERNEL).unwrap();
    }
    // Children in id order: a(2): x(3), z(6); x: y(4); b(5); c(7).
    assert_eq!(pass(&t), ["", "a", "a/x", "a/x/y", "a/z", "b", "c"]);
    t.offline("a/x/y").unwrap();
    t.offline("b").unwrap();
    assert_eq!(pass(&t), ["", "a", "a/x", "a/z", "c"]);
    t.remove("b").unwrap();
    assert_eq!(pass(&t), ["", "a", "a/x", "a/z", "c"]);
}

#[test]
fn iteration_resumes_after_a_removed_position() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let b = t.create("a/b", Gfp::KERNEL).unwrap();
    t.create("a/c", Gfp::KERNEL).unwrap();
    t.create("d", Gfp::KERNEL).unwrap();
    t.remove("a/b").unwrap();
    assert_eq!(t.iter_next(Some(&b)).unwrap().path(), "a/c");
    let _ = a;
}

#[test]
fn shrink_cursor_round_robin_and_offline_cleanup() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    t.create("b", Gfp::KERNEL).unwrap();
    let cur = ShrinkCursor::new();
    let mut seen = Vec::new();
    while let Some(m) = cur.next(&t) {
        seen.push(m.id());
    }
    assert_eq!(seen, [1, 2, 3]);
    assert!(cur.next(&t).is_some(), "a new pass starts after None");
    let at = cur.next(&t).unwrap();
    assert!(KArc::ptr_eq(&at, &a));
    let off = t.offline("a").unwrap();
    cur.offline_cleanup(&t, &off.memcg);
    let pos = cur.position().unwrap();
    assert_eq!(pos.path(), "b");
    assert!(pos.is_online());
    // Cleanup for a cgroup the cursor is not at changes nothing.
    cur.offline_cleanup(&t, &a);
    assert_eq!(cur.position().unwrap().path(), "b");
    assert!(cur.next(&t).is_none());
    let mut seen = Vec::new();
    while let Some(m) = cur.next(&t) {
        assert!(m.is_online());
        seen.push(m.id());
    }
    assert_eq!(seen, [1, 3]);
}

#[test]
fn tree_drop_releases_cgroups_but_objcgs_keep_working() {
    let t = tree();
    let a = t.create("a", Gfp::KERNEL).unwrap();
    let o = a.obj_cgroup().unwrap();
    o.charge_zswap(10);
    drop(t);
    assert_eq!(a.zswap_current(), 10);
    o.uncharge_zswap(10);
    assert_eq!(a.obj_cgroup().unwrap_err(), Error::ENOENT);
    drop(o);
    assert_eq!(KArc::strong_count(&a), 1, "no cycle keeps it alive");
}
