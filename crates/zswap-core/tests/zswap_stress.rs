//! A bounded multi-threaded stress test of the whole stack on the test
//! platform: threads swap pages out (to zswap, the zeromap or the device),
//! fault them back in (two mappings of one slot fault concurrently), write
//! entries back and run the shrinker, all at once. At the end: every page's
//! bytes are right, zswap's counters match the entries present, and no page,
//! slot, swap-cache folio or charge is left.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use kbase::PAGE_SIZE;
use swapcache::SwpEntry;

const OBJECTS: usize = 48;
const THREADS: usize = 4;
const ITERS: usize = 4000;
const TIME_CAP: Duration = Duration::from_secs(4);
const SWAP_PAGES: u64 = 1024;

type Page = Arc<Box<[u8; PAGE_SIZE]>>;

enum State {
    Resident,
    /// Swapped out at `swp`; `maps` mappings not yet faulted back.
    Swapped {
        swp: SwpEntry,
        maps: u32,
    },
}

struct Obj {
    data: Page,
    state: State,
}

fn content(seed: u64) -> Page {
    Arc::new(match seed % 4 {
        0 => compressible(seed as u8),
        1 => incompressible(seed),
        2 => same_filled(0),
        _ => same_filled(seed as u8 | 1),
    })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn concurrent_swap_out_fault_writeback_and_shrink_keep_every_page() {
    let k = Kernel::new(Config {
        swap_pages: SWAP_PAGES,
        ..Config::default()
    });
    // Four threads on as few as two CPUs: a slot's owner can be off CPU for
    // many time slices, so the recursion detector gets a generous limit.
    k.sp().wait_limit.store(100_000, Ordering::Relaxed);
    let cg = k.cgroup("stress");
    let baseline = k.pages_allocated();
    let objs: Arc<Vec<Mutex<Obj>>> = Arc::new(
        (0..OBJECTS as u64)
            .map(|i| {
                Mutex::new(Obj {
                    data: content(i),
                    state: State::Resident,
                })
            })
            .collect(),
    );
    let mismatches = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (k, cg, objs) = (k.clone(), cg.clone(), objs.clone());
            let (mismatches, errors, stop) = (mismatches.clone(), errors.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
                for it in 0..ITERS {
                    if stop.load(Ordering::Relaxed) || start.elapsed() > TIME_CAP {
                        break;
                    }
                    let r = rng.next();
                    let i = (r as usize >> 8) % OBJECTS;
                    match r % 16 {
                        // Writeback of whatever slot the object is at now.
                        0 => {
                            let swp = match objs[i].lock().unwrap().state {
                                State::Swapped { swp, .. } => Some(swp),
                                State::Resident => None,
                            };
                            if let Some(s) = swp {
                                let _ = k.zswap.writeback(s);
                            }
                        }
                        1 => {
                            let _ = k.zswap.shrink_memcg(&cg);
                        }
                        _ => {
                            let mut o = objs[i].lock().unwrap();
                            match o.state {
                                State::Resident => {
                                    if r.is_multiple_of(3) {
                                        o.data = content(r >> 20);
                                    }
                                    if k.swap.inuse_pages(k.swp_type).unwrap() + 8 >= SWAP_PAGES {
                                        continue;
                                    }
                                    let (swp, _) = k.swap_out(&o.data, Some(&cg));
                                    let maps = if r % 5 < 2 {
                                        k.swap.swap_duplicate(swp).unwrap();
                                        2
                                    } else {
                                        1
                                    };
                                    o.state = State::Swapped { swp, maps };
                                }
                                State::Swapped { swp, maps } => {
                                    // Claim one mapping and fault it with
                                    // the object unlocked, so the other
                                    // mapping's fault can run concurrently.
                                    let want = o.data.clone();
                                    o.state = if maps > 1 {
                                        State::Swapped {
                                            swp,
                                            maps: maps - 1,
                                        }
                                    } else {
                                        State::Resident
                                    };
                                    drop(o);
                                    match k.swap_in(swp) {
                                        Ok(got) => {
                                            if got[..] != want[..] {
                                                mismatches.fetch_add(1, Ordering::Relaxed);
                                            }
                                        }
                                        Err(e) => {
                                            errors.lock().unwrap().push((t, it, swp, e));
                                            stop.store(true, Ordering::Relaxed);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(*errors.lock().unwrap(), vec![], "faults failed");
    assert_eq!(mismatches.load(Ordering::Relaxed), 0, "pages corrupted");
    // Quiescent: the counters match the entries present.
    let present = (0..SWAP_PAGES)
        .filter(|&off| k.zswap.is_present(SwpEntry::new(k.swp_type, off).unwrap()))
        .count() as u64;
    let s = k.zswap.stats();
    assert_eq!(s.stored_pages, present);
    assert_eq!(k.zswap.lru_entries() as u64, present);
    assert_eq!(cg.stat().zswapped, present * PAGE_SIZE as u64);
    assert!(s.stored_incompressible_pages <= present);
    assert!(s.zswpout >= s.zswpin + s.zswpwb);
    // Fault every remaining mapping back in and check its bytes.
    for o in objs.iter() {
        let mut o = o.lock().unwrap();
        if let State::Swapped { swp, maps } = o.state {
            for _ in 0..maps {
                let got = k.swap_in(swp).unwrap();
                assert_eq!(&got[..], &o.data[..]);
            }
            o.state = State::Resident;
        }
    }
    // Nothing left: no entry, slot, swap-cache folio, page or charge.
    let s = k.zswap.stats();
    assert_eq!((s.stored_pages, k.zswap.lru_entries()), (0, 0));
    assert_eq!(s.pool_total_size, 0);
    assert_eq!(k.swap.inuse_pages(k.swp_type), Ok(0));
    for off in 0..SWAP_PAGES {
        let e = SwpEntry::new(k.swp_type, off).unwrap();
        assert!(k.swap.lookup(e).is_none(), "folio left at {e:?}");
        assert_eq!(k.swap.has_cache(e), Ok(false));
    }
    assert_eq!(cg.zswap_current(), 0);
    assert_eq!(k.memcg.as_ref().unwrap().root().memory_current(), 0);
    assert_eq!(k.pages_allocated(), baseline, "pages leaked");
    assert!(s.zswpout > 0 && k.swap.stats().swpout_zero > 0);
}
