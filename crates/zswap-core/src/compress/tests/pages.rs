//! Synthetic pages for the compressors' tests, shared by the tests of the
//! compressor, the decoder and the encoder: fixed ones, and a property
//! tests' strategy of pages shaped like memory.

use alloc::boxed::Box;
use alloc::vec::Vec;

use proptest::prelude::*;

use kbase::PAGE_SIZE;

/// `pat` repeated over a page (a page of zeros if `pat` is empty).
pub(in crate::compress) fn page_from(pat: &[u8]) -> Box<[u8; PAGE_SIZE]> {
    let mut p = Box::new([0u8; PAGE_SIZE]);
    for (d, s) in p.iter_mut().zip(pat.iter().cycle()) {
        *d = *s;
    }
    p
}

/// A page of 8-byte words like a heap holds, from a xorshift stream seeded
/// by `seed`: zeros, pointers into one region, small integers, random words.
pub(in crate::compress) fn heap_like_page(seed: u64) -> Box<[u8; PAGE_SIZE]> {
    let mut p = Box::new([0u8; PAGE_SIZE]);
    let mut x = seed | 1;
    for w in p.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v: u64 = match x % 4 {
            0 => 0,
            1 => 0x0000_5555_0000_0000 | (x >> 40) << 4,
            2 => x % 100,
            _ => x,
        };
        w.copy_from_slice(&v.to_le_bytes());
    }
    p
}

/// Pages shaped like memory: fills, repeated patterns, runs, heap words,
/// text, random heads with zero tails, and plain noise.
pub(in crate::compress) fn any_page() -> impl Strategy<Value = Box<[u8; PAGE_SIZE]>> {
    prop_oneof![
        any::<u8>().prop_map(|b| Box::new([b; PAGE_SIZE])),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(|pat| page_from(&pat)),
        prop::collection::vec((any::<u8>(), 1usize..512), 1..32).prop_map(|runs| {
            let bytes: Vec<u8> = runs
                .into_iter()
                .flat_map(|(b, n)| core::iter::repeat_n(b, n))
                .collect();
            page_from(&bytes)
        }),
        any::<u64>().prop_map(heap_like_page),
        prop::collection::vec(prop::sample::select(b" etaoinshrdlu\n".to_vec()), 64..2048)
            .prop_map(|t| page_from(&t)),
        (prop::collection::vec(any::<u8>(), 0..PAGE_SIZE)).prop_map(|head| {
            let mut p = Box::new([0u8; PAGE_SIZE]);
            p[..head.len()].copy_from_slice(&head);
            p
        }),
        prop::collection::vec(any::<u8>(), PAGE_SIZE).prop_map(|v| page_from(&v)),
    ]
}
