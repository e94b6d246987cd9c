//! Random alloc/write/read/free/compact/shrinker-scan sequences against a
//! plain model (handle -> bytes): every read returns what was written, stale
//! handles are refused, counters match (per class and per class shard too,
//! against a recount of the zspages), and freeing everything leaves zero
//! pages; with several class shards, each object lands in (and its handle
//! names) the shard of the CPU that allocated it.
#![cfg(not(loom))]

use std::collections::HashMap;

use kbase::{Error, Gfp, HeapPageAllocator, PAGE_SIZE};
use proptest::prelude::*;
use zpool::{Handle, MAX_PAGES_PER_ZSPAGE, MAX_SHARDS, ZsConfig, ZsPool};

#[derive(Clone, Debug)]
enum Op {
    /// Size, fill, CPU (a multiple of 3: the entry point without a CPU).
    Malloc(usize, u8, usize),
    MallocWrite(usize, u8, usize),
    Write(usize, u8),
    Read(usize),
    Free(usize),
    FreeStale(usize),
    Compact,
    ShrinkerScan(usize),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..64,
        64usize..1600,
        1600usize..PAGE_SIZE,
        (PAGE_SIZE - 200)..=PAGE_SIZE,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (size(), any::<u8>(), 0usize..40).prop_map(|(s, b, c)| Op::Malloc(s, b, c)),
        3 => (size(), any::<u8>(), 0usize..40).prop_map(|(s, b, c)| Op::MallocWrite(s, b, c)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Op::Write(i, b)),
        3 => any::<usize>().prop_map(Op::Read),
        4 => any::<usize>().prop_map(Op::Free),
        1 => any::<usize>().prop_map(Op::FreeStale),
        1 => Just(Op::Compact),
        1 => (0usize..8).prop_map(Op::ShrinkerScan),
    ]
}

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i * 7 + i / 251) as u8))
        .collect()
}

fn config() -> ProptestConfig {
    if cfg!(miri) {
        ProptestConfig {
            cases: 4,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    } else {
        ProptestConfig {
            cases: 96,
            ..ProptestConfig::default()
        }
    }
}

fn max_ops() -> usize {
    if cfg!(miri) { 30 } else { 400 }
}

/// Most class shards the sharded model tries: under Miri 3 (two shards
/// and one that is not a power of two; every check walks every shard of
/// every band after each operation, which Miri runs slowly).
fn max_shards() -> usize {
    if cfg!(miri) { 3 } else { MAX_SHARDS }
}

/// Checks every class shard's counters against a recount from the model:
/// its objects are exactly the live handles of its sizes allocated on its
/// CPUs; an empty zspage is freed at once, so each zspage holds at least one
/// object and none is left when the shard is empty; a zspage has between
/// one and its chain length of pages; a class's counters are its shards'
/// sums; and the shards' pages add up to the pool's.
fn recount_classes(
    p: &ZsPool<&HeapPageAllocator>,
    model: &HashMap<Handle, Vec<u8>>,
    shard_of: &HashMap<Handle, usize>,
    pool_pages: usize,
) -> Result<(), TestCaseError> {
    let k = p.nr_shards();
    let mut objects = vec![0usize; p.nr_classes() * k];
    let mut bytes = vec![0usize; p.nr_classes() * k];
    for (h, d) in model {
        let ci = p.class_index(d.len()).unwrap();
        let s = shard_of[h];
        prop_assert_eq!(p.shard_of_handle(*h), Ok((ci, s)));
        objects[ci * k + s] += 1;
        bytes[ci * k + s] += d.len();
    }
    let mut pages = 0;
    let mut freeable = 0;
    for i in 0..p.nr_classes() {
        let sum = p.class_stats(i).unwrap();
        let mut expect_sum = (0, 0, 0, 0, 0);
        for s in 0..k {
            let c = p.shard_stats(i, s).unwrap();
            expect_sum.0 += c.objects;
            expect_sum.1 += c.bytes;
            expect_sum.2 += c.pages;
            expect_sum.3 += c.zspages;
            expect_sum.4 += c.freeable;
        }
        prop_assert_eq!(
            (sum.objects, sum.bytes, sum.pages, sum.zspages, sum.freeable),
            expect_sum,
            "class {} is the sum of its shards",
            i
        );
        prop_assert_eq!(
            p.class_recount(i).unwrap(),
            (sum.objects, sum.bytes, sum.pages, sum.zspages)
        );
    }
    prop_assert!(p.shard_stats(p.nr_classes(), 0).is_none());
    prop_assert!(p.shard_stats(0, k).is_none());
    for (j, &expect) in objects.iter().enumerate() {
        let (i, s) = (j / k, j % k);
        let c = p.shard_stats(i, s).unwrap();
        prop_assert_eq!(
            c.objects,
            expect,
            "objects of class {} ({} B) shard {}",
            i,
            c.size,
            s
        );
        prop_assert_eq!(c.bytes, bytes[j], "bytes of class {} shard {}", i, s);
        // The shard's counters agree with its zspages, recounted.
        prop_assert_eq!(
            p.shard_recount(i, s).unwrap(),
            (c.objects, c.bytes, c.pages, c.zspages),
            "class {} recount",
            i
        );
        prop_assert!(c.zspages <= c.objects, "class {}: {:?}", i, c);
        prop_assert!(c.bytes <= c.pages * PAGE_SIZE, "class {}: {:?}", i, c);
        prop_assert!(c.freeable < c.pages.max(1), "class {}: {:?}", i, c);
        freeable += c.freeable;
        prop_assert!(c.zspages <= c.pages, "class {}: {:?}", i, c);
        prop_assert!(
            c.pages <= c.zspages * c.pages_per_zspage,
            "class {}: {:?}",
            i,
            c
        );
        pages += c.pages;
    }
    prop_assert_eq!(pages, pool_pages, "the classes' pages add up to the pool's");
    prop_assert_eq!(p.shrinker_count(), freeable);
    Ok(())
}

/// Allocates `s` bytes on `cpu` (a multiple of 3: through the entry point
/// without a CPU, shard 0), with `malloc_write` or `malloc` then `write`;
/// returns the handle and the shard it must be in.
fn alloc(
    p: &ZsPool<&HeapPageAllocator>,
    d: &[u8],
    cpu: usize,
    with_write: bool,
) -> (Handle, usize) {
    let (gfp, k) = (Gfp::KERNEL, p.nr_shards());
    let (h, shard) = match (with_write, cpu.is_multiple_of(3)) {
        (true, true) => (p.malloc_write(d, gfp), 0),
        (true, false) => (p.malloc_write_on(cpu, d, gfp), cpu % k),
        (false, true) => (p.malloc(d.len(), gfp), 0),
        (false, false) => (p.malloc_on(cpu, d.len(), gfp), cpu % k),
    };
    let h = h.unwrap();
    if !with_write {
        p.write(h, d).unwrap();
    }
    (h, shard)
}

fn run(chain: usize, shards: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let a = HeapPageAllocator::new();
    let p = ZsPool::with_config(
        &a,
        ZsConfig {
            max_pages_per_zspage: chain,
            shards,
        },
    )
    .unwrap();
    prop_assert_eq!(p.nr_shards(), shards);
    let mut live: Vec<Handle> = Vec::new();
    let mut model: HashMap<Handle, Vec<u8>> = HashMap::new();
    let mut shard_of: HashMap<Handle, usize> = HashMap::new();
    let mut stale: Vec<Handle> = Vec::new();
    for op in ops {
        match op {
            Op::Malloc(s, b, cpu) | Op::MallocWrite(s, b, cpu) => {
                let d = bytes(b, s);
                let (h, shard) = alloc(&p, &d, cpu, matches!(op, Op::MallocWrite(..)));
                prop_assert!(!model.contains_key(&h));
                live.push(h);
                model.insert(h, d);
                shard_of.insert(h, shard);
            }

            Op::Write(i, b) if !live.is_empty() => {
                let h = live[i % live.len()];
                let d = model.get_mut(&h).unwrap();
                // Partial write: the head changes, the tail stays.
                let n = 1 + (b as usize) % d.len();
                let new = bytes(b ^ 0x5a, n);
                p.write(h, &new).unwrap();
                d[..n].copy_from_slice(&new);
            }
            Op::Read(i) if !live.is_empty() => {
                let h = live[i % live.len()];
                let d = &model[&h];
                let mut buf = vec![0u8; PAGE_SIZE];
                prop_assert_eq!(p.read(h, &mut buf).unwrap(), d.len());
                prop_assert_eq!(&buf[..d.len()], &d[..]);
                let joined = p.read_with(h, |x, y| [x, y].concat()).unwrap();
                prop_assert_eq!(&joined, d);
                // A consuming read whose reader fails keeps the object.
                let kept = p.read_and_free(h, |x, y| Err::<(), _>([x, y].concat()));
                prop_assert_eq!(&kept.unwrap().unwrap_err(), d);
            }
            Op::Free(i) if !live.is_empty() => {
                let h = live.swap_remove(i % live.len());
                let d = model.remove(&h).unwrap();
                shard_of.remove(&h);
                if i % 2 == 0 {
                    p.free(h).unwrap();
                } else {
                    // zswap's load: read, then freed in the same hold.
                    let got = p.read_and_free(h, |x, y| Ok::<_, ()>([x, y].concat()));
                    prop_assert_eq!(got.unwrap().unwrap(), d);
                }
                stale.push(h);
            }
            Op::FreeStale(i) if !stale.is_empty() => {
                let h = stale[i % stale.len()];
                prop_assert_eq!(p.free(h), Err(Error::ENOENT));
                prop_assert_eq!(p.read(h, &mut [0; PAGE_SIZE]), Err(Error::ENOENT));
            }
            Op::Compact => {
                let (before, done) = (p.total_pages(), p.stats().pages_compacted);
                let freed = p.compact();
                prop_assert_eq!(p.total_pages(), before - freed);
                prop_assert_eq!(p.stats().pages_compacted, done + freed);
            }
            Op::ShrinkerScan(n) => {
                let (before, done) = (p.total_pages(), p.stats().pages_compacted);
                let count = p.shrinker_count();
                let freed = p.shrinker_scan(n);
                prop_assert_eq!(p.total_pages(), before - freed);
                prop_assert_eq!(p.stats().pages_compacted, done + freed);
                // A scan stops once it freed what was asked (it may
                // overshoot by the rest of one zspage).
                prop_assert!(freed <= n + 2 * MAX_PAGES_PER_ZSPAGE || freed <= count);
            }
            _ => {}
        }
        let st = p.stats();
        prop_assert_eq!(st.objects, model.len());
        prop_assert_eq!(st.bytes_stored, model.values().map(Vec::len).sum::<usize>());
        prop_assert_eq!(st.pages, a.allocated_pages());
        recount_classes(&p, &model, &shard_of, st.pages)?;
    }
    for (h, d) in &model {
        prop_assert_eq!(&p.read_with(*h, |x, y| [x, y].concat()).unwrap(), d);
    }
    for h in live {
        p.free(h).unwrap();
    }
    prop_assert_eq!(p.total_pages(), 0);
    prop_assert_eq!(a.allocated_pages(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pool_matches_model(
        chain in 1usize..=MAX_PAGES_PER_ZSPAGE,
        ops in prop::collection::vec(op(), 1..max_ops()),
    ) {
        run(chain, 1, ops)?;
    }

    /// The same with 2..=MAX_SHARDS class shards per band (2..=3 under
    /// Miri, see `max_shards`): objects allocated
    /// on CPU c land in shard c % shards, every call on them (from any
    /// CPU) finds them there, and compaction and the shrinker work over
    /// every shard.
    #[test]
    fn sharded_pool_matches_model(
        chain in 1usize..=MAX_PAGES_PER_ZSPAGE,
        shards in 2usize..=max_shards(),
        ops in prop::collection::vec(op(), 1..max_ops()),
    ) {
        run(chain, shards, ops)?;
    }
}
