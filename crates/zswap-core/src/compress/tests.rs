//! Unit and property tests of the compressors.

extern crate std;

use alloc::vec;
use alloc::vec::Vec;
use std::boxed::Box;

use proptest::prelude::*;

use super::*;

/// Corpus pages, shared with the encoder's tests.
pub(super) mod corpus;
/// Synthetic pages, shared with the decoder's and the encoder's tests.
pub(super) mod pages;

use corpus::{Take, corpus_pages};
use pages::{any_page, heap_like_page, page_from};

/// Every algorithm built into this test binary.
fn kinds() -> Vec<CompressorKind> {
    CompressorKind::ALL
        .into_iter()
        .filter(|k| k.is_available())
        .collect()
}

fn compress_to_vec(c: &Compressor, cpu: usize, page: &[u8; PAGE_SIZE]) -> Vec<u8> {
    c.compress(cpu, page, |r| r.unwrap().to_vec())
}

fn round_trip(c: &Compressor, page: &[u8; PAGE_SIZE]) -> Vec<u8> {
    round_trip_on(c, 0, page)
}

fn round_trip_on(c: &Compressor, cpu: usize, page: &[u8; PAGE_SIZE]) -> Vec<u8> {
    let z = compress_to_vec(c, cpu, page);
    let mut out = Box::new([0xa5u8; PAGE_SIZE]);
    c.decompress(cpu, &z, &[], &mut out).unwrap();
    assert!(
        out[..] == page[..],
        "{} round trip changed the page",
        c.kind()
    );
    z
}

#[test]
fn from_name_parses_known_names_and_rejects_others() {
    assert_eq!(CompressorKind::from_name("lz4"), Ok(CompressorKind::Lz4));
    assert_eq!(CompressorKind::from_name(" lz4\n"), Ok(CompressorKind::Lz4));
    let zstd = CompressorKind::from_name("zstd\n");
    if cfg!(feature = "zstd") {
        assert_eq!(zstd, Ok(CompressorKind::Zstd));
    } else {
        assert_eq!(zstd, Err(Error::ENOENT));
    }
    for bad in ["", "\n", "lzo", "LZ4", "lz4 zstd", "lz4hc", "zstd1"] {
        assert_eq!(
            CompressorKind::from_name(bad),
            Err(Error::ENOENT),
            "{bad:?}"
        );
    }
    for k in CompressorKind::ALL {
        assert_eq!(std::format!("{k}"), k.name());
        if k.is_available() {
            assert_eq!(CompressorKind::from_name(k.name()), Ok(k));
        }
    }
    assert_eq!(CompressorKind::default(), CompressorKind::Lz4);
}

#[test]
fn new_builds_one_context_per_cpu_and_at_least_one() {
    for kind in kinds() {
        let c = Compressor::new(kind, 3, Gfp::KERNEL).unwrap();
        assert_eq!(c.kind(), kind);
        assert_eq!(c.nr_contexts(), 3);
        let c = Compressor::new(kind, 0, Gfp::KERNEL).unwrap();
        assert_eq!(c.nr_contexts(), 1);
        round_trip(&c, &heap_like_page(1));
    }
}

/// CPUs brought up later get their contexts once, however many times (and
/// from however many threads) they are prepared; until then a store on such
/// a CPU number borrows a prepared CPU's contexts.
#[test]
fn prepare_publishes_a_cpus_contexts_once() {
    for kind in kinds() {
        let c = Compressor::new_online(kind, 3, &|cpu| cpu == 0, Gfp::KERNEL).unwrap();
        assert_eq!(c.nr_prepared(), 1);
        round_trip_on(&c, 2, &heap_like_page(2));
        let first = |cpu: usize| c.percpu[cpu].get().map(|p| p as *const PerCpu);
        assert_eq!(first(2), None);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| c.prepare(2, Gfp::KERNEL).unwrap());
            }
        });
        let published = first(2).expect("CPU 2 prepared");
        c.prepare(2, Gfp::KERNEL).unwrap();
        assert_eq!(
            first(2),
            Some(published),
            "a prepared CPU keeps its contexts"
        );
        assert_eq!(c.nr_prepared(), 2);
        round_trip_on(&c, 2, &heap_like_page(3));
        assert_eq!(c.prepare(3, Gfp::KERNEL), Err(Error::EINVAL));
    }
}

#[cfg(not(feature = "zstd"))]
#[test]
fn zstd_without_the_feature_is_unavailable() {
    assert!(!CompressorKind::Zstd.is_available());
    assert_eq!(
        Compressor::new(CompressorKind::Zstd, 1, Gfp::KERNEL).unwrap_err(),
        Error::ENOENT
    );
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_contexts_are_page_sized() {
    let c = Compressor::new(CompressorKind::Zstd, 1, Gfp::KERNEL).unwrap();
    let ctx = c.percpu[0].get().expect("CPU 0 prepared");
    let comp = ctx.comp.lock();
    let CompEngine::Zstd(cz) = &comp.engine else {
        panic!("not a zstd compression context");
    };
    let decomp = ctx.decomp.lock();
    let DecompEngine::Zstd(dz) = &decomp.engine else {
        panic!("not a zstd decompression context");
    };
    // The level-3 context for unknown sizes needs over 1 MiB; one sized for a
    // page must stay far below.
    let bytes = cz.workspace_bytes() + dz.workspace_bytes();
    assert!(bytes < 512 * 1024, "{bytes}");
}

#[test]
fn pages_round_trip_and_compressible_ones_shrink() {
    for kind in kinds() {
        let c = Compressor::new(kind, 2, Gfp::KERNEL).unwrap();
        let zero = Box::new([0u8; PAGE_SIZE]);
        assert!(round_trip(&c, &zero).len() < 64, "{kind}");
        let text = page_from(b"The quick brown fox jumps over the lazy dog. ");
        assert!(round_trip(&c, &text).len() < PAGE_SIZE / 4, "{kind}");
        let heap = heap_like_page(7);
        assert!(round_trip(&c, &heap).len() < PAGE_SIZE, "{kind}");
    }
}

#[test]
fn incompressible_page_reports_no_shrink_and_still_round_trips() {
    let random = heap_like_page(0); // seed 0 -> x = 1: still pseudo-random
    let mut noise = Box::new([0u8; PAGE_SIZE]);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in noise.iter_mut() {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (x >> 56) as u8;
    }
    for kind in kinds() {
        let c = Compressor::new(kind, 1, Gfp::KERNEL).unwrap();
        let z = round_trip(&c, &noise);
        assert!(z.len() >= PAGE_SIZE, "{kind}: {} bytes", z.len());
        assert!(z.len() <= SCRATCH_SIZE);
        round_trip(&c, &random);
    }
}

#[test]
fn lz4_output_is_plain_lz4_block_format() {
    // What we store must be what any lz4 block decoder reads: decodable by
    // lz4_flex's decoder, and the same bytes as this crate's encoder gives
    // on its own (the per-CPU table's reuse changes nothing).
    let c = Compressor::new(CompressorKind::Lz4, 1, Gfp::KERNEL).unwrap();
    let mut pages = vec![heap_like_page(3), page_from(b"abcabcabd")];
    pages.extend(corpus_pages(Take::PerFile(8)));
    for page in &pages {
        let ours = compress_to_vec(&c, 0, page);
        let mut plain = Box::new([0u8; super::lz4_enc::DST_LEN]);
        let mut table = super::lz4_enc::Table::try_new().unwrap();
        let n = super::lz4_enc::compress(page, &mut table, &mut plain).unwrap();
        assert_eq!(ours, plain[..n]);
        let mut out = vec![0u8; PAGE_SIZE];
        assert_eq!(
            lz4_flex::block::decompress_into(&ours, &mut out).ok(),
            Some(PAGE_SIZE)
        );
        assert_eq!(out[..], page[..]);
    }
}

#[test]
fn any_cpu_number_is_clamped_not_trusted() {
    for kind in kinds() {
        let c = Compressor::new(kind, 2, Gfp::KERNEL).unwrap();
        let page = heap_like_page(11);
        for cpu in [0, 1, 2, 3, 1000, usize::MAX] {
            let z = compress_to_vec(&c, cpu, &page);
            let mut out = Box::new([0u8; PAGE_SIZE]);
            let (a, b) = z.split_at(z.len() / 2);
            c.decompress(cpu, a, b, &mut out).unwrap();
            assert!(out[..] == page[..]);
        }
    }
}

#[test]
fn compress_hands_the_closure_result_back() {
    let c = Compressor::new(CompressorKind::Lz4, 1, Gfp::KERNEL).unwrap();
    let len = c.compress(0, &Box::new([0u8; PAGE_SIZE]), |r| r.map(|z| z.len()));
    assert!(matches!(len, Ok(n) if n > 0 && n < 64));
}

#[test]
fn object_split_over_two_pool_pages_decompresses_at_every_split() {
    for kind in kinds() {
        let c = Compressor::new(kind, 1, Gfp::KERNEL).unwrap();
        let page = heap_like_page(5);
        let z = compress_to_vec(&c, 0, &page);
        for cut in 0..=z.len() {
            let (a, b) = z.split_at(cut);
            let mut out = Box::new([0u8; PAGE_SIZE]);
            c.decompress(0, a, b, &mut out).unwrap();
            assert!(out[..] == page[..], "{kind} cut {cut}");
        }
    }
}

#[test]
fn truncated_extended_and_empty_input_is_eio() {
    for kind in kinds() {
        let c = Compressor::new(kind, 1, Gfp::KERNEL).unwrap();
        let page = heap_like_page(9);
        let z = compress_to_vec(&c, 0, &page);
        let mut out = Box::new([0u8; PAGE_SIZE]);
        assert_eq!(
            c.decompress(0, &[], &[], &mut out),
            Err(Error::EIO),
            "{kind}"
        );
        for cut in [1, z.len() / 2, z.len() - 1] {
            assert_eq!(
                c.decompress(0, &z[..cut], &[], &mut out),
                Err(Error::EIO),
                "{kind}"
            );
        }
        let mut longer = z.clone();
        longer.extend_from_slice(&[0x10, 0x41]);
        assert_eq!(
            c.decompress(0, &longer, &[], &mut out),
            Err(Error::EIO),
            "{kind}"
        );
        // Two valid objects back to back decode to two pages: too long.
        let twice = [&z[..], &z[..]].concat();
        assert_eq!(
            c.decompress(0, &twice, &[], &mut out),
            Err(Error::EIO),
            "{kind}"
        );
        assert_eq!(c.decompress(0, &z, &z, &mut out), Err(Error::EIO), "{kind}");
    }
}

#[test]
fn input_larger_than_the_scratch_is_eio() {
    for kind in kinds() {
        let c = Compressor::new(kind, 1, Gfp::KERNEL).unwrap();
        let big = vec![0u8; SCRATCH_SIZE];
        let mut out = Box::new([0u8; PAGE_SIZE]);
        assert_eq!(c.decompress(0, &big, &[1], &mut out), Err(Error::EIO));
        assert_eq!(c.decompress(0, &big, &big, &mut out), Err(Error::EIO));
    }
}

#[test]
fn valid_object_of_a_short_page_is_eio() {
    let half = heap_like_page(13);
    let half = &half[..PAGE_SIZE / 2];
    let mut out = Box::new([0u8; PAGE_SIZE]);

    let c = Compressor::new(CompressorKind::Lz4, 1, Gfp::KERNEL).unwrap();
    let mut z = vec![0u8; SCRATCH_SIZE];
    let n = lz4_flex::block::compress_into(half, &mut z).unwrap();
    assert_eq!(c.decompress(0, &z[..n], &[], &mut out), Err(Error::EIO));

    #[cfg(feature = "zstd")]
    {
        let c = Compressor::new(CompressorKind::Zstd, 1, Gfp::KERNEL).unwrap();
        let n = zstd_safe::compress(&mut z[..], half, ZSTD_LEVEL).unwrap();
        assert_eq!(c.decompress(0, &z[..n], &[], &mut out), Err(Error::EIO));
    }
}

#[cfg(feature = "zstd")]
#[test]
fn lz4_and_zstd_objects_are_not_mixed_up() {
    // An object of one algorithm given to the other fails cleanly (a pool
    // recreated with another compressor keeps old entries with the old one).
    let lz4 = Compressor::new(CompressorKind::Lz4, 1, Gfp::KERNEL).unwrap();
    let zstd = Compressor::new(CompressorKind::Zstd, 1, Gfp::KERNEL).unwrap();
    let page = heap_like_page(17);
    let mut out = Box::new([0u8; PAGE_SIZE]);
    let zl = compress_to_vec(&lz4, 0, &page);
    let zz = compress_to_vec(&zstd, 0, &page);
    assert_eq!(zstd.decompress(0, &zl, &[], &mut out), Err(Error::EIO));
    // lz4 has no magic number; whatever it makes of a zstd frame, it is
    // not our page.
    assert!(lz4.decompress(0, &zz, &[], &mut out).is_err() || out[..] != page[..]);
}

#[test]
fn contexts_are_shared_safely_between_threads() {
    let _watchdog = kbase::testing::watchdog(
        "contexts_are_shared_safely_between_threads",
        std::time::Duration::from_secs(120),
    );
    for kind in kinds() {
        let c = Compressor::new(kind, 2, Gfp::KERNEL).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let c = &c;
                s.spawn(move || {
                    for i in 0..50u64 {
                        let page = heap_like_page(t * 1000 + i);
                        let cpu = (t + i) as usize;
                        let z = compress_to_vec(c, cpu, &page);
                        let mut out = Box::new([0u8; PAGE_SIZE]);
                        let (a, b) = z.split_at(z.len() / 3);
                        c.decompress(cpu + 1, a, b, &mut out).unwrap();
                        assert!(out[..] == page[..]);
                    }
                });
            }
        });
    }
}

#[test]
fn decompress_works_while_the_same_cpu_compresses() {
    // zswap's store holds the compression lock while it takes pool locks,
    // and its load decompresses under a pool lock: decompression must not
    // need the compression lock, or the two would deadlock.
    for kind in kinds() {
        let c = Compressor::new(kind, 1, Gfp::KERNEL).unwrap();
        let page = heap_like_page(23);
        let z = compress_to_vec(&c, 0, &page);
        let (a, b) = z.split_at(z.len() / 2);
        c.compress(0, &page, |r| {
            assert!(r.is_ok());
            let mut out = Box::new([0u8; PAGE_SIZE]);
            c.decompress(0, a, b, &mut out).unwrap();
            assert!(out[..] == page[..]);
        });
    }
}

#[test]
fn corpus_pages_round_trip() {
    // Real memory when the corpus beside the repository is present; nothing otherwise.
    let pages = corpus_pages(Take::PerFile(64));
    if !kbase::testing::corpus_test("corpus_pages_round_trip", Some(pages.len())) {
        return;
    }
    for kind in kinds() {
        let c = Compressor::new(kind, 1, Gfp::KERNEL).unwrap();
        for page in &pages {
            round_trip(&c, page);
        }
    }
}

/// A damage to a compressed object.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
    DuplicateTail(usize),
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::DuplicateTail),
    ]
}

fn mutate(z: &mut Vec<u8>, m: &Mutation) {
    let len = z.len();
    match *m {
        Mutation::Flip(i, x) if len > 0 => z[i % len] ^= x,
        Mutation::Truncate(i) => z.truncate(i % (len + 1)),
        Mutation::Insert(i, b) => z.insert(i % (len + 1), b),
        Mutation::Remove(i) if len > 0 => {
            z.remove(i % len);
        }
        Mutation::DuplicateTail(i) if len > 0 => {
            let tail = z[i % len..].to_vec();
            z.extend_from_slice(&tail);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn prop_round_trip(page in any_page(), cpu in any::<usize>(), cut in any::<usize>()) {
        for kind in kinds() {
            let c = Compressor::new(kind, 2, Gfp::KERNEL).unwrap();
            let z = compress_to_vec(&c, cpu, &page);
            prop_assert!(z.len() <= SCRATCH_SIZE);
            let (a, b) = z.split_at(cut % (z.len() + 1));
            let mut out = Box::new([0u8; PAGE_SIZE]);
            prop_assert_eq!(c.decompress(cpu, a, b, &mut out), Ok(()));
            prop_assert!(out[..] == page[..]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Garbage never panics, and only an exact page counts as success.
    #[test]
    fn prop_garbage_never_panics(
        a in prop::collection::vec(any::<u8>(), 0..1200),
        b in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        for kind in kinds() {
            let c = Compressor::new(kind, 1, Gfp::KERNEL).unwrap();
            let mut out = Box::new([0u8; PAGE_SIZE]);
            let r = c.decompress(0, &a, &b, &mut out);
            prop_assert!(r.is_ok() || r == Err(Error::EIO));
        }
    }

    /// Damaged real objects never panic; any success is a full page.
    #[test]
    fn prop_mutated_objects_never_panic(
        page in any_page(),
        muts in prop::collection::vec(any_mutation(), 1..6),
        cut in any::<usize>(),
    ) {
        for kind in kinds() {
            let c = Compressor::new(kind, 1, Gfp::KERNEL).unwrap();
            let mut z = compress_to_vec(&c, 0, &page);
            for m in &muts {
                mutate(&mut z, m);
            }
            let (a, b) = z.split_at(cut % (z.len() + 1));
            let mut out = Box::new([0u8; PAGE_SIZE]);
            let r = c.decompress(0, a, b, &mut out);
            prop_assert!(r.is_ok() || r == Err(Error::EIO));
        }
    }
}

#[test]
fn mutated_corpus_objects_never_panic() {
    // Deterministic sweep over real objects: flip each byte position of a few
    // compressed corpus pages (synthetic pages without the corpus).
    let mut pages = corpus_pages(Take::PerFile(1));
    // Runs over the synthetic page either way; reports the corpus part.
    kbase::testing::corpus_test("mutated_corpus_objects_never_panic", Some(pages.len()));
    pages.push(heap_like_page(21));
    for kind in kinds() {
        let c = Compressor::new(kind, 1, Gfp::KERNEL).unwrap();
        let mut out = Box::new([0u8; PAGE_SIZE]);
        for page in &pages {
            let z = compress_to_vec(&c, 0, page);
            for i in 0..z.len() {
                for x in [0x01 << (i % 8), 0xff] {
                    let mut m = z.clone();
                    m[i] ^= x;
                    let r = c.decompress(0, &m, &[], &mut out);
                    assert!(r.is_ok() || r == Err(Error::EIO));
                }
            }
        }
    }
}

/// A CPU's own contexts when it is prepared (past the last CPU, those of
/// `cpu % n`); a CPU not prepared borrows the next prepared one's, wrapping.
#[test]
fn context_is_the_cpus_own_or_the_next_prepared() {
    for kind in kinds() {
        let c = Compressor::new_online(kind, 4, &|cpu| cpu == 1 || cpu == 2, Gfp::KERNEL).unwrap();
        let own = |cpu: usize| c.percpu[cpu].get().map(|p| p as *const PerCpu);
        let ctx = |cpu: usize| c.context(cpu).ok().map(|p| p as *const PerCpu);
        let cases = [
            (0, 1),
            (1, 1),
            (2, 2),
            (3, 1),
            (5, 1),
            (6, 2),
            (7, 1),
            (usize::MAX, 1),
        ];
        for (cpu, expect) in cases {
            assert!(own(expect).is_some());
            assert_eq!(ctx(cpu), own(expect), "cpu {cpu}");
        }
    }
}
