//! Fault injection on the pool's heap allocations (handle-table directories
//! and chunks, zspage slabs, page vectors, reverse maps): a global allocator
//! that fails the n-th allocation of this thread, for every n until a run
//! makes no failing call. Every failure must be ENOMEM, nothing may leak
//! (heap bytes and pages back to where they were), and every object that was
//! stored must read back intact.
#![cfg(not(loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kbase::{Error, Gfp, HeapPageAllocator};
use zpool::{Handle, ZsConfig, ZsPool};

struct FailingAlloc;

thread_local! {
    /// Allocations left before one fails (`u64::MAX`: never).
    static COUNTDOWN: Cell<u64> = const { Cell::new(u64::MAX) };
    /// Allocations that failed on purpose.
    static FAILED: Cell<u64> = const { Cell::new(0) };
    /// Heap bytes this thread holds.
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

// SAFETY: every call goes to `System`, which upholds GlobalAlloc's contract;
// failing an allocation (returning null) is allowed by it.
unsafe impl GlobalAlloc for FailingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let fail = COUNTDOWN
            .try_with(|c| {
                let n = c.get();
                if n == u64::MAX {
                    return false;
                }
                c.set(n.saturating_sub(1));
                n == 0
            })
            .unwrap_or(false);
        if fail {
            let _ = FAILED.try_with(|f| f.set(f.get() + 1));
            return std::ptr::null_mut();
        }
        // SAFETY: same layout, forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let _ = LIVE.try_with(|l| l.set(l.get() + layout.size() as i64));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as i64));
        // SAFETY: `ptr` came from `System.alloc` with `layout` (above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: FailingAlloc = FailingAlloc;

fn arm(n: u64) {
    COUNTDOWN.with(|c| c.set(n));
}

fn disarm() {
    COUNTDOWN.with(|c| c.set(u64::MAX));
}

fn live() -> i64 {
    LIVE.with(Cell::get)
}

fn failed() -> u64 {
    FAILED.with(Cell::get)
}

fn size(i: usize) -> usize {
    // Every band, sizes spanning pages, a few tiny objects.
    ([37, 700, 1100, 1400, 1800, 2300, 3000, 4096, 1290, 9][i % 10] + (i * 13) % 50)
        .min(kbase::PAGE_SIZE)
}

/// One run with the `n`-th allocation failing, in a pool of `shards` class
/// shards per band (with more than one, objects are allocated on CPUs
/// 0..5 in turn). Returns whether it failed.
fn run(n: u64, objects: usize, shards: usize) -> bool {
    let pages = HeapPageAllocator::new();
    let before = live();
    let before_failed = failed();
    // Everything the pool allocates below happens on this thread; the
    // model vector is allocated up front so that only the pool's
    // allocations count.
    let mut stored: Vec<(Handle, usize, u8)> = Vec::with_capacity(objects);
    let mut buf = vec![0u8; kbase::PAGE_SIZE];
    let held = live();
    arm(n);
    let cfg = ZsConfig {
        max_pages_per_zspage: 4,
        shards,
    };
    let pool = match ZsPool::with_config(&pages, cfg) {
        Ok(p) => Some(p),
        Err(e) => {
            assert_eq!(e, Error::ENOMEM, "pool creation, fault {n}");
            None
        }
    };
    if let Some(pool) = pool {
        for i in 0..objects {
            let s = size(i);
            let byte = (i % 251) as u8;
            buf.fill(byte);
            // Every other object through malloc_write (malloc + write in
            // one class-lock hold): the same failures, nothing left behind.
            let cpu = i % 5;
            let r = match (i % 2 == 0, shards > 1) {
                (true, false) => pool
                    .malloc(s, Gfp::KERNEL)
                    .inspect(|&h| pool.write(h, &buf[..s]).unwrap()),
                (false, false) => pool.malloc_write(&buf[..s], Gfp::KERNEL),
                (true, true) => pool
                    .malloc_on(cpu, s, Gfp::KERNEL)
                    .inspect(|&h| pool.write(h, &buf[..s]).unwrap()),
                (false, true) => pool.malloc_write_on(cpu, &buf[..s], Gfp::KERNEL),
            };
            match r {
                Ok(h) => stored.push((h, s, byte)),
                Err(e) => assert_eq!(e, Error::ENOMEM, "malloc {i} ({s} B), fault {n}"),
            }
            // Free every third object as it goes, so zspages get holes,
            // reverse maps shrink and compaction has work.
            if i % 3 == 2 && stored.len() > 1 {
                let (h, _, _) = stored.remove(stored.len() / 2);
                pool.free(h).unwrap();
            }
            if i % 40 == 39 {
                pool.compact();
                pool.shrinker_scan(4);
            }
        }
        disarm();
        let st = pool.stats();
        assert_eq!(st.objects, stored.len(), "fault {n}");
        assert_eq!(st.pages, pages.allocated_pages(), "fault {n}");
        for &(h, s, byte) in &stored {
            let ok = pool
                .read_with(h, |a, b| {
                    a.len() + b.len() == s && a.iter().chain(b).all(|&x| x == byte)
                })
                .unwrap();
            assert!(ok, "object of {s} B damaged, fault {n}");
        }
        for &(h, _, _) in &stored {
            pool.free(h).unwrap();
        }
        assert_eq!(pool.total_pages(), 0, "fault {n}");
        drop(pool);
    }
    disarm();
    assert_eq!(pages.allocated_pages(), 0, "pages leaked, fault {n}");
    assert_eq!(live(), held, "heap bytes leaked, fault {n}");
    drop(stored);
    drop(buf);
    assert_eq!(live(), before);
    failed() != before_failed
}

#[test]
fn every_heap_allocation_failure_is_enomem_without_leak_or_damage() {
    every_failure(1);
}

/// The same in a pool of three class shards per band, objects allocated on
/// five CPUs: each shard's tables and zspages fail and recover alike.
#[test]
fn every_heap_allocation_failure_with_class_shards() {
    every_failure(3);
}

fn every_failure(shards: usize) {
    // A failed assertion must be able to print.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        disarm();
        hook(info)
    }));
    // The lock-order validator (a test feature) keeps this thread's held
    // locks in a vector: let it allocate before any fault is armed.
    {
        let pages = HeapPageAllocator::new();
        let pool = ZsPool::new(&pages).unwrap();
        let h = pool.malloc(100, Gfp::KERNEL).unwrap();
        pool.free(h).unwrap();
    }
    // Under Miri a smaller script, and every third allocation failed in
    // turn (each run is slow there); natively every one.
    let (objects, stride) = if cfg!(miri) { (12, 3) } else { (1200, 1) };
    let mut n = 0;
    let mut injected = 0;
    while run(n, objects, shards) {
        injected += 1;
        n += stride;
        assert!(n < 100_000, "the runs never stop failing");
    }
    // The script allocates metadata of every kind: many faults were hit.
    assert!(
        injected >= if cfg!(miri) { 3 } else { 10 },
        "only {injected} allocations were failed"
    );
    eprintln!("heap faults: {injected} allocations failed in turn, all ENOMEM, nothing leaked");
}
