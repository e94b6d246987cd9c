//! [`ShrinkCursor`]: the global shrink worker's round-robin position
//! (Linux's `zswap_next_shrink` + `zswap_shrink_lock`).

use kbase::sync::Mutex;

use crate::memcg::MemcgRef;
use crate::tree::MemcgTree;

/// A round-robin cursor over the online cgroups of a tree, for zswap's
/// global shrink worker. zswap-core embeds one and calls
/// [`ShrinkCursor::offline_cleanup`] from its memcg offline hook, so the
/// cursor never keeps an offline cgroup (`zswap_memcg_offline_cleanup`).
///
/// Lock order: the cursor lock, then the tree lock.
///
/// # Invariants
///
/// Once `offline_cleanup(m)` has returned, `pos` is not `m` (and every later
/// `next()` returns only cgroups that were online when it looked).
#[derive(Debug)]
pub struct ShrinkCursor {
    pos: Mutex<Option<MemcgRef>>,
}

impl Default for ShrinkCursor {
    fn default() -> Self {
        Self::new()
    }
}

impl ShrinkCursor {
    /// A cursor before the start of a pass.
    pub fn new() -> ShrinkCursor {
        ShrinkCursor {
            pos: Mutex::new(None),
        }
    }

    /// Advances to the next online cgroup and returns a reference to it
    /// (`mem_cgroup_iter` + `mem_cgroup_tryget_online`), or `None` once at
    /// the end of each full pass over the tree.
    pub fn next(&self, tree: &MemcgTree) -> Option<MemcgRef> {
        let mut pos = self.pos.lock();
        let next = tree.iter_next(pos.as_ref());
        let old = core::mem::replace(&mut *pos, next.clone());
        drop(pos);
        drop(old);
        next
    }

    /// `zswap_memcg_offline_cleanup()`: if the cursor is at `dying`, moves
    /// it on to the next online cgroup (or the end of the pass). Call after
    /// [`MemcgTree::offline`] has returned.
    pub fn offline_cleanup(&self, tree: &MemcgTree, dying: &MemcgRef) {
        let mut pos = self.pos.lock();
        let at_dying = pos.as_ref().is_some_and(|p| kbase::KArc::ptr_eq(p, dying));
        if !at_dying {
            return;
        }
        let next = tree.iter_next(pos.as_ref());
        let old = core::mem::replace(&mut *pos, next);
        drop(pos);
        drop(old);
    }

    /// The cgroup the cursor is at (tests, debugging).
    pub fn position(&self) -> Option<MemcgRef> {
        self.pos.lock().clone()
    }
}
