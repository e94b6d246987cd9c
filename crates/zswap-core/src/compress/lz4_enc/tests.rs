//! The encoder: round trips through `lz4_flex`'s decoder and this crate's
//! own ([`super::super::lz4_block`]), the format's end rules, LZ4's bound,
//! independence from earlier pages, and sizes against `lz4_flex`'s encoder
//! (on the corpus when `../shared/corpus` is present). Under Miri a small
//! set of pages (every path of the loop: runs, long literals, long matches,
//! pages that do not compress, matches at both ends).

extern crate std;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::{BOUND, DST_LEN, Table, compress};
use crate::compress::lz4_block;
use crate::compress::tests::corpus::{Take, corpus_pages};
use crate::compress::tests::pages::page_from;
use kbase::PAGE_SIZE;

type Page = Box<[u8; PAGE_SIZE]>;

/// A page of `f(i)` at each byte.
fn page_of(mut f: impl FnMut(usize) -> u8) -> Page {
    let mut p = Box::new([0u8; PAGE_SIZE]);
    for (i, b) in p.iter_mut().enumerate() {
        *b = f(i);
    }
    p
}

/// A xorshift stream.
fn noise(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Bytes that do not compress.
fn random_page(seed: u64) -> Page {
    let mut r = noise(seed);
    page_of(|_| r() as u8)
}

/// 8-byte words like a heap: zeros, pointers into one region, small
/// integers, random words.
fn pointer_page(seed: u64) -> Page {
    let mut p = Box::new([0u8; PAGE_SIZE]);
    let mut r = noise(seed);
    for w in p.chunks_exact_mut(8) {
        let x = r();
        let v: u64 = match x % 4 {
            0 => 0,
            1 => 0x0000_7f3a_0000_0000 | ((x >> 40) << 4),
            2 => x % 100,
            _ => x,
        };
        w.copy_from_slice(&v.to_le_bytes());
    }
    p
}

/// Text-like bytes: words from a small alphabet.
fn text_page(seed: u64) -> Page {
    const WORDS: [&[u8]; 8] = [
        b"the ",
        b"page ",
        b"swap ",
        b"zswap ",
        b"compressed ",
        b"of ",
        b"memory ",
        b"\n",
    ];
    let mut r = noise(seed);
    let mut v = Vec::with_capacity(PAGE_SIZE + 16);
    while v.len() < PAGE_SIZE {
        v.extend_from_slice(WORDS[(r() % 8) as usize]);
    }
    page_of(|i| v[i])
}

/// The synthetic pages every test runs over: every path of the loop.
fn synthetic() -> Vec<Page> {
    let (r6, r7, r8) = (random_page(6), random_page(7), random_page(8));
    let mut v = vec![
        page_from(&[0]),
        page_from(&[0xa5]),
        page_from(b"ab"),
        page_from(b"abcdefg"),
        page_from(b"0123456789abcdefghij"),
        random_page(1),
        random_page(2),
        pointer_page(3),
        pointer_page(4),
        text_page(5),
        // Random head, zero tail; zero head, random tail.
        page_of(|i| if i < 3000 { r6[i] } else { 0 }),
        page_of(|i| if i < 3000 { 0 } else { r7[i] }),
        // A long literal run (>= 15 + 255 * k) between two matches.
        page_of(|i| if (200..1900).contains(&i) { r8[i] } else { 7 }),
        // A match reaching the very end of the page (the last literals).
        page_of(|i| (i % 251) as u8),
        // Matches of every length up to a few hundred: runs of growing
        // length, separated by one random byte.
        {
            let mut r = noise(9);
            let mut v = Vec::new();
            let mut n = 1;
            while v.len() < PAGE_SIZE {
                v.extend(core::iter::repeat_n(b'x', n));
                v.push(r() as u8);
                n += 1;
            }
            page_of(|i| v[i])
        },
        // Only the last bytes differ from the first page's bytes.
        page_of(|i| if i + 13 >= PAGE_SIZE { i as u8 } else { 0 }),
    ];
    // A page of random 5-byte groups, each repeated once at once: short
    // matches at offset 5 everywhere.
    let mut r = noise(10);
    let mut g = Vec::new();
    while g.len() < PAGE_SIZE {
        let w = r().to_le_bytes();
        g.extend_from_slice(&w[..5]);
        g.extend_from_slice(&w[..5]);
    }
    v.push(page_of(|i| g[i]));
    v
}

/// Compresses `page` with a fresh table.
fn encode(page: &[u8; PAGE_SIZE]) -> Vec<u8> {
    let mut t = Table::try_new().unwrap();
    encode_with(&mut t, page)
}

fn encode_with(t: &mut Table, page: &[u8; PAGE_SIZE]) -> Vec<u8> {
    let mut dst = Box::new([0x5au8; DST_LEN]);
    let n = compress(page, t, &mut dst).unwrap();
    assert!(n <= BOUND, "{n} bytes, above LZ4's bound {BOUND}");
    dst[..n].to_vec()
}

/// The block's sequences must keep LZ4's end rules: the last sequence has
/// at least 5 literals (or is the whole page), and the last match starts at
/// least 12 bytes before the end. Returns the block's sequence count.
fn check_end_rules(z: &[u8]) -> usize {
    let (mut ip, mut out, mut last_match_start, mut seqs) = (0usize, 0usize, None, 0);
    let length = |ip: &mut usize| {
        let mut n = 0;
        loop {
            let b = z[*ip];
            *ip += 1;
            n += b as usize;
            if b != 255 {
                return n;
            }
        }
    };
    loop {
        let token = z[ip];
        ip += 1;
        let mut lit = (token >> 4) as usize;
        if lit == 15 {
            lit += length(&mut ip);
        }
        ip += lit;
        out += lit;
        if ip == z.len() {
            assert!(lit >= 5 || out == lit, "last literals {lit}");
            break;
        }
        ip += 2;
        let mut len = (token & 15) as usize;
        if len == 15 {
            len += length(&mut ip);
        }
        last_match_start = Some(out);
        out += len + 4;
        seqs += 1;
    }
    assert_eq!(out, PAGE_SIZE);
    if let Some(m) = last_match_start {
        assert!(m + 12 <= PAGE_SIZE, "last match at {m}");
    }
    seqs
}

/// Round trip through both decoders, and the format's end rules.
fn check(page: &[u8; PAGE_SIZE]) -> Vec<u8> {
    let z = encode(page);
    let mut out = Box::new([0xccu8; PAGE_SIZE]);
    assert_eq!(lz4_block::decompress(&z, &mut out[..]), Ok(PAGE_SIZE));
    assert!(
        out[..] == page[..],
        "zswap's decoder: round trip changed the page"
    );
    let mut out2 = vec![0x33u8; PAGE_SIZE];
    assert_eq!(
        lz4_flex::block::decompress_into(&z, &mut out2).ok(),
        Some(PAGE_SIZE)
    );
    assert!(
        out2[..] == page[..],
        "lz4_flex's decoder: round trip changed the page"
    );
    check_end_rules(&z);
    z
}

/// lz4_flex's block for `page` (its one-shot encoder).
fn flex_len(page: &[u8; PAGE_SIZE]) -> usize {
    let mut z = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)];
    lz4_flex::block::compress_into(&page[..], &mut z).unwrap()
}

#[test]
fn synthetic_pages_round_trip_through_both_decoders() {
    for (i, page) in synthetic().iter().enumerate() {
        let z = check(page);
        std::eprintln!("synthetic page {i}: {} bytes", z.len());
    }
}

#[test]
fn runs_and_repeats_shrink_and_noise_does_not() {
    // The one property zswap relies on beyond the round trip: what repeats
    // shrinks, and a page that does not compress comes out longer than a
    // page (it is then stored raw), within LZ4's bound.
    assert!(encode(&page_from(&[0])).len() < 32);
    assert!(encode(&page_from(b"abcdefg")).len() < 48);
    assert!(encode(&text_page(1)).len() < PAGE_SIZE / 2);
    assert!(encode(&pointer_page(2)).len() < PAGE_SIZE);
    let z = encode(&random_page(3));
    assert!(z.len() > PAGE_SIZE && z.len() <= BOUND, "{}", z.len());
}

#[test]
fn output_does_not_depend_on_earlier_pages() {
    // The table is reused per CPU: a page's block must be what a fresh
    // table gives, whatever was compressed before.
    let pages = synthetic();
    let fresh: Vec<Vec<u8>> = pages.iter().map(|p| encode(p)).collect();
    let mut t = Table::try_new().unwrap();
    let rounds = if cfg!(miri) { 1 } else { 3 };
    for _ in 0..rounds {
        for (p, f) in pages.iter().zip(&fresh).rev() {
            assert_eq!(&encode_with(&mut t, p), f);
        }
    }
}

#[test]
fn a_table_with_any_contents_gives_the_fresh_block() {
    // `run` zeroes the table before it searches (its candidates are
    // unchecked, below the position by the table invariant): even garbage
    // in the table (here: every entry at its largest, or at a position past
    // the page's middle, or at the page's end) gives the block of a fresh
    // table, which decodes to the page.
    for fill in [u16::MAX, 2048, 4095, 1] {
        for page in [text_page(11), pointer_page(12), page_from(b"xy")] {
            let mut t = Table::try_new().unwrap();
            t.slots.fill(fill);
            let mut dst = Box::new([0u8; DST_LEN]);
            let n = super::fast::run(&page, t.slots.first_chunk_mut().unwrap(), &mut dst).unwrap();
            assert_eq!(&dst[..n], &encode(&page)[..]);
            let mut out = vec![0u8; PAGE_SIZE];
            assert_eq!(lz4_block::decompress(&dst[..n], &mut out), Ok(PAGE_SIZE));
            assert!(out[..] == page[..]);
        }
    }
}

/// The largest per-page excess over lz4_flex's size this encoder may have,
/// as a fraction of lz4_flex's size plus a few bytes: its search differs
/// (5-byte candidates, a larger table), so a page may come out a little
/// longer or shorter, never much longer.
const PER_PAGE_MARGIN: f64 = 0.10;
const PER_PAGE_SLACK: usize = 64;

fn within_margin(ours: usize, flex: usize) -> bool {
    ours as f64 <= flex as f64 * (1.0 + PER_PAGE_MARGIN) + PER_PAGE_SLACK as f64
}

#[test]
#[cfg_attr(miri, ignore)]
fn sizes_stay_close_to_lz4_flex_on_synthetic_pages() {
    for (i, page) in synthetic().iter().enumerate() {
        let (ours, flex) = (encode(page).len(), flex_len(page));
        assert!(
            within_margin(ours, flex),
            "page {i}: {ours} bytes, lz4_flex {flex}"
        );
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn corpus_sizes_no_worse_than_lz4_flex() {
    // On real memory: every page within the margin of lz4_flex's size, and
    // in total (a page that does not shrink counted as the page zswap
    // stores raw) no more bytes than lz4_flex. Both decoders round trip
    // every page.
    let pages = corpus_pages(Take::Total(2048));
    if !kbase::testing::corpus_test("lz4_enc_sizes_vs_lz4_flex", Some(pages.len())) {
        return;
    }
    let (mut ours_total, mut flex_total) = (0usize, 0usize);
    for (i, page) in pages.iter().enumerate() {
        let ours = check(page).len();
        let flex = flex_len(page);
        assert!(
            within_margin(ours, flex),
            "corpus page {i}: {ours} bytes, lz4_flex {flex}"
        );
        ours_total += ours.min(PAGE_SIZE);
        flex_total += flex.min(PAGE_SIZE);
    }
    std::eprintln!("lz4_enc: {ours_total} bytes, lz4_flex {flex_total}");
    assert!(
        ours_total <= flex_total,
        "{ours_total} bytes, lz4_flex {flex_total}"
    );
}

/// Pages shaped like memory, and arbitrary ones.
fn any_page() -> impl Strategy<Value = Page> {
    let fill = |v: Vec<u8>| page_of(|i| v[i % v.len()]);
    prop_oneof![
        any::<u8>().prop_map(|b| page_from(&[b])),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(fill),
        prop::collection::vec((any::<u8>(), 1usize..300), 1..40).prop_map(move |runs| {
            let v: Vec<u8> = runs
                .into_iter()
                .flat_map(|(b, n)| core::iter::repeat_n(b, n))
                .collect();
            page_of(|i| v[i % v.len()])
        }),
        any::<u64>().prop_map(pointer_page),
        any::<u64>().prop_map(text_page),
        prop::collection::vec(any::<u8>(), 0..PAGE_SIZE).prop_map(|head| {
            let mut p = Box::new([0u8; PAGE_SIZE]);
            p[..head.len()].copy_from_slice(&head);
            p
        }),
        prop::collection::vec(any::<u8>(), PAGE_SIZE).prop_map(fill),
        // Pieces copied from earlier in the page: matches of many offsets
        // and lengths.
        (
            any::<u64>(),
            prop::collection::vec((0usize..4096, 1usize..600), 1..24)
        )
            .prop_map(|(seed, copies)| {
                let mut p = random_page(seed);
                let mut at = 0;
                for (back, len) in copies {
                    at = (at + len) % PAGE_SIZE;
                    let from = at.saturating_sub(back + 1);
                    for k in 0..len.min(PAGE_SIZE - at) {
                        p[at + k] = p[from + k];
                    }
                }
                p
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    #[cfg_attr(miri, ignore)]
    fn prop_round_trip_within_bound_and_margin(page in any_page()) {
        let z = check(&page);
        prop_assert!(z.len() <= BOUND);
        let flex = flex_len(&page);
        prop_assert!(within_margin(z.len(), flex), "{} bytes, lz4_flex {}", z.len(), flex);
    }
}

#[test]
#[ignore = "the whole corpus: run on demand, in release"]
fn whole_corpus_total_bytes() {
    // The figure the module docs quote: every page of the corpus encoded
    // and round tripped, a page that does not shrink counted as a page.
    let pages = corpus_pages(Take::PerFile(usize::MAX));
    if !kbase::testing::corpus_test("lz4_enc_whole_corpus_total", Some(pages.len())) {
        return;
    }
    let mut total = 0usize;
    for page in &pages {
        total += check(page).len().min(PAGE_SIZE);
    }
    std::eprintln!("lz4_enc: {} pages, {total} bytes", pages.len());
}
