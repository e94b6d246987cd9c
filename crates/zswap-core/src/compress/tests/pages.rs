//! Synthetic pages for the compressors' tests, shared by the tests of the
//! compressor, the decoder and the encoder.

use alloc::boxed::Box;

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
