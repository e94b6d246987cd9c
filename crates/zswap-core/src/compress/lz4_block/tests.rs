//! The decoder against a byte-at-a-time reference and `lz4_flex`'s decoder:
//! every edge of the format, every copy path of the fast loop at every
//! distance from the ends of both buffers, and (outside Miri) properties
//! over pages, hand-built blocks, garbage and damaged objects.

extern crate std;

use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::{decompress, decompress_split};
use crate::compress::tests::pages::{self, heap_like_page, page_from};
use kbase::PAGE_SIZE;

/// The format as the module docs define it, one byte at a time: the output
/// into a buffer of `cap` bytes, or `None` for an error.
fn reference(src: &[u8], cap: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut ip = 0;
    let length = |ip: &mut usize| -> Option<usize> {
        let mut n = 0;
        loop {
            let b = *src.get(*ip)?;
            *ip += 1;
            n += b as usize;
            if b != 255 {
                return Some(n);
            }
        }
    };
    loop {
        let token = *src.get(ip)?;
        ip += 1;
        let mut lit = (token >> 4) as usize;
        if lit == 15 {
            lit += length(&mut ip)?;
        }
        for _ in 0..lit {
            out.push(*src.get(ip)?);
            ip += 1;
        }
        if out.len() > cap {
            return None;
        }
        if ip == src.len() {
            return Some(out);
        }
        let offset = u16::from_le_bytes([*src.get(ip)?, *src.get(ip + 1)?]) as usize;
        ip += 2;
        let mut len = (token & 15) as usize;
        if len == 15 {
            len += length(&mut ip)?;
        }
        len += 4;
        if offset == 0 || offset > out.len() || out.len() + len > cap {
            return None;
        }
        for _ in 0..len {
            out.push(out[out.len() - offset]);
        }
    }
}

/// `lz4_flex`'s decoder into `cap` bytes.
fn flex(src: &[u8], cap: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; cap];
    let n = lz4_flex::block::decompress_into(src, &mut out).ok()?;
    out.truncate(n);
    Some(out)
}

/// Ours into `cap` bytes (prefilled with a marker).
fn ours(src: &[u8], cap: usize) -> Option<Vec<u8>> {
    let mut out = vec![0xa5u8; cap];
    let n = decompress(src, &mut out).ok()?;
    assert!(n <= cap);
    out.truncate(n);
    Some(out)
}

/// Ours, the reference and `lz4_flex` agree on `src` into `cap` bytes.
/// Under Miri (which checks our unsafe code, slowly) only against the
/// reference, and only for short inputs; the callers check pages.
#[track_caller]
fn check(src: &[u8], cap: usize) -> Option<Vec<u8>> {
    let r = ours(src, cap);
    if !cfg!(miri) || src.len() < 256 {
        assert!(r == reference(src, cap), "ours vs reference, cap {cap}");
    }
    if !cfg!(miri) {
        assert!(r == flex(src, cap), "ours vs lz4_flex, cap {cap}");
    }
    r
}

/// One sequence: literals, then a match (offset, length) unless last.
struct Seq<'a> {
    lit: &'a [u8],
    m: Option<(u16, usize)>,
}

fn push_length(out: &mut Vec<u8>, mut n: usize) {
    while n >= 255 {
        out.push(255);
        n -= 255;
    }
    out.push(n as u8);
}

/// Encodes sequences as a block (match lengths of at least 4).
fn encode(seqs: &[Seq]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in seqs {
        let lit = s.lit.len();
        let ml = s.m.map_or(0, |(_, l)| l - 4);
        out.push(((lit.min(15) as u8) << 4) | ml.min(15) as u8);
        if lit >= 15 {
            push_length(&mut out, lit - 15);
        }
        out.extend_from_slice(s.lit);
        if let Some((off, _)) = s.m {
            out.extend_from_slice(&off.to_le_bytes());
            if ml >= 15 {
                push_length(&mut out, ml - 15);
            }
        }
    }
    out
}

fn lz4_flex_compress(data: &[u8]) -> Vec<u8> {
    let mut z = vec![0u8; lz4_flex::block::get_maximum_output_size(data.len())];
    let n = lz4_flex::block::compress_into(data, &mut z).unwrap();
    z.truncate(n);
    z
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect()
}

#[test]
fn empty_input_is_an_error() {
    for cap in [0, 1, PAGE_SIZE] {
        assert_eq!(check(&[], cap), None);
    }
}

#[test]
fn zero_length_block_decodes_to_nothing() {
    for cap in [0, 1, PAGE_SIZE] {
        assert_eq!(check(&[0x00], cap), Some(vec![]));
    }
    // A match nibble in the last token is ignored: no offset follows.
    assert_eq!(check(&[0x0f], 16), Some(vec![]));
}

#[test]
fn literal_only_blocks_of_every_length_class() {
    let data = noise(600, 1);
    let lens: &[usize] = if cfg!(miri) {
        &[0, 1, 14, 15, 16, 17, 269, 270, 271, 300]
    } else {
        &[
            0, 1, 2, 13, 14, 15, 16, 17, 18, 31, 32, 33, 100, 269, 270, 271, 524, 525, 526, 600,
        ]
    };
    for &n in lens {
        let z = encode(&[Seq {
            lit: &data[..n],
            m: None,
        }]);
        for cap in [n, n + 1, n + 15, n + 16, n + 17, n + 64, PAGE_SIZE] {
            assert_eq!(check(&z, cap).as_deref(), Some(&data[..n]), "len {n}");
        }
        if n > 0 {
            assert_eq!(check(&z, n - 1), None, "len {n} one byte short");
        }
    }
}

#[test]
fn match_reaching_the_end_of_the_output() {
    let head = noise(64, 2);
    for len in [4, 5, 18, 19, 20, 100, PAGE_SIZE - 64] {
        let cap = 64 + len;
        let body = [
            Seq {
                lit: &head,
                m: Some((64, len)),
            },
            Seq { lit: &[], m: None },
        ];
        let z = encode(&body);
        let mut want = head.clone();
        for i in 0..len {
            want.push(want[i]);
        }
        assert_eq!(check(&z, cap), Some(want.clone()), "len {len}");
        assert_eq!(check(&z, cap + 1), Some(want), "len {len}");
        // One byte short of room: the match overruns.
        assert_eq!(check(&z, cap - 1), None, "len {len}");
        // Without the final literals-only sequence the block is truncated.
        assert_eq!(check(&z[..z.len() - 1], cap), None, "len {len}");
    }
}

#[test]
fn offset_zero_and_offsets_past_the_output_are_errors() {
    let head = noise(40, 3);
    for cap in [64, PAGE_SIZE] {
        for (off, ok) in [
            (0u16, false),
            (1, true),
            (40, true),
            (41, false),
            (65535, false),
        ] {
            let z = encode(&[
                Seq {
                    lit: &head,
                    m: Some((off, 8)),
                },
                Seq { lit: &[], m: None },
            ]);
            assert_eq!(check(&z, cap).is_some(), ok, "offset {off} cap {cap}");
        }
    }
    // A match first, before any output.
    assert_eq!(check(&[0x00, 0x01, 0x00, 0x00], 64), None);
}

#[test]
fn overlong_lengths_are_errors() {
    // Literal length extensions running off the end of the input.
    assert_eq!(check(&[0xf0], 64), None);
    assert_eq!(check(&[0xf0, 0xff, 0xff], PAGE_SIZE), None);
    // A literal run longer than the input.
    let mut z = vec![0xf0, 0x10];
    z.extend_from_slice(&[7; 30]);
    assert_eq!(check(&z, PAGE_SIZE), None);
    // A literal run longer than the output, input present.
    let mut z = vec![0xf0];
    z.extend_from_slice(&[0xff; 16]);
    z.push(0x0a);
    let n = 15 + 16 * 255 + 10;
    z.extend(core::iter::repeat_n(9u8, n));
    assert_eq!(check(&z, PAGE_SIZE), None);
    assert_eq!(check(&z, n).map(|v| v.len()), Some(n));
    // A match length far past the output (and its extension running off
    // the input).
    let mut z = vec![0x1f, 0x41, 0x01, 0x00];
    z.extend_from_slice(&[0xff; 40]);
    z.extend_from_slice(&[0x00, 0x00]);
    assert_eq!(check(&z, PAGE_SIZE), None);
    assert_eq!(check(&z[..20], PAGE_SIZE), None);
    // The same length fits a big enough buffer.
    let cap = 1 + 4 + 15 + 40 * 255;
    assert_eq!(check(&z, cap).map(|v| v.len()), Some(cap));
}

fn sample_objects() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pages = vec![heap_like_page(5).to_vec()];
    if !cfg!(miri) {
        pages.push(page_from(b"The quick brown fox jumps over the lazy dog. ").to_vec());
        pages.push(vec![0u8; PAGE_SIZE]);
        pages.push(noise(PAGE_SIZE, 6));
        let mut half = noise(PAGE_SIZE / 2, 7);
        half.resize(PAGE_SIZE, 0);
        pages.push(half);
    }
    pages
        .into_iter()
        .map(|p| (lz4_flex_compress(&p), p))
        .collect()
}

#[test]
fn pages_compressed_by_lz4_flex_decode_to_themselves() {
    for (z, page) in sample_objects() {
        assert_eq!(check(&z, PAGE_SIZE), Some(page.clone()));
        let mut dst = vec![0u8; PAGE_SIZE];
        assert_eq!(decompress(&z, &mut dst), Ok(PAGE_SIZE));
        assert_eq!(dst, page);
    }
}

#[test]
fn truncated_objects_are_errors() {
    for (z, _) in sample_objects() {
        let step = if cfg!(miri) { 211 } else { 1 };
        for cut in (0..z.len()).step_by(step) {
            // Some cuts end right after a literal run: a shorter output,
            // never a full page.
            let r = check(&z[..cut], PAGE_SIZE);
            assert!(r.is_none_or(|v| v.len() < PAGE_SIZE), "cut {cut}");
        }
    }
}

#[test]
fn too_small_outputs_are_errors() {
    for (z, page) in sample_objects() {
        let caps: Vec<usize> = if cfg!(miri) {
            vec![0, 100, PAGE_SIZE - 17, PAGE_SIZE - 1]
        } else {
            (0..PAGE_SIZE)
                .step_by(7)
                .chain(PAGE_SIZE - 40..PAGE_SIZE)
                .collect()
        };
        for cap in caps {
            assert_eq!(check(&z, cap), None, "cap {cap}");
        }
        assert_eq!(check(&z, PAGE_SIZE + 100), Some(page));
    }
}

#[test]
fn bytes_after_a_complete_block_are_errors_for_a_page() {
    let (z, page) = sample_objects().swap_remove(0);
    // The last sequence of a block has no match only because the input ends
    // there: with more bytes its match offset follows, and any match (4
    // bytes or more) overruns a full page.
    for tail in [
        &[0x00][..],
        &[0x00, 0x00],
        &[0x01, 0x00],
        &[0x01, 0x00, 0x00],
        &[0x01, 0x00, 0x10, b'x'],
        &[0xff; 7],
    ] {
        let zt = [&z[..], tail].concat();
        assert_eq!(check(&zt, PAGE_SIZE), None, "tail {tail:?}");
        check(&zt, PAGE_SIZE + 64);
    }
    // Into a bigger buffer the bytes are the sequences they say: a match of
    // 4 at offset 1, then an empty literal run.
    let zt = [&z[..], &[0x01, 0x00, 0x00]].concat();
    let mut longer = page.clone();
    longer.extend_from_slice(&[page[PAGE_SIZE - 1]; 4]);
    assert_eq!(check(&zt, PAGE_SIZE + 4), Some(longer));
    // The same object twice: the first one's last token is read as a
    // sequence with a match, so the second object is no longer aligned.
    let z3 = [&z[..], &z[..]].concat();
    assert_eq!(check(&z3, PAGE_SIZE), None);
    check(&z3, 2 * PAGE_SIZE);
}

/// Every match copy path (offsets 1 to 7, 8 to 15, 16 and up; short and
/// long lengths; literal runs short and long) at every distance from the
/// end of both buffers, so each sequence runs in the fast loop, its exact
/// copies or the careful loop.
#[test]
fn every_offset_and_length_at_every_distance_from_the_ends() {
    let head = noise(300, 8);
    let (offsets, lens, lits, tails): (Vec<u16>, Vec<usize>, Vec<usize>, Vec<usize>) = if cfg!(miri)
    {
        (
            vec![1, 2, 3, 4, 7, 8, 15, 16, 40],
            vec![4, 19, 37],
            vec![0, 15, 40],
            vec![0, 17, 33],
        )
    } else {
        (
            (1..=40).chain([64, 255, 256, 299, 300]).collect(),
            (4..=40).chain([63, 64, 65, 200, 271, 300]).collect(),
            vec![0, 1, 7, 14, 15, 16, 31, 40, 300],
            // Past the fast loop's margins (17 input bytes after a token,
            // 46 output bytes at one) and a little further.
            (0..=50).chain([63, 64]).collect(),
        )
    };
    for &off in &offsets {
        for &len in &lens {
            for &lit in &lits {
                // Literals (at least `off` bytes of output first), the
                // match, a second match right behind it, then `tail`
                // literals.
                let first = lit.max(off as usize);
                for &tail in &tails {
                    let z = encode(&[
                        Seq {
                            lit: &head[..first],
                            m: Some((off, len)),
                        },
                        Seq {
                            lit: &head[..lit.min(14)],
                            m: Some((off, 4 + len % 7)),
                        },
                        Seq {
                            lit: &head[..tail],
                            m: None,
                        },
                    ]);
                    let want = reference(&z, usize::MAX).unwrap();
                    let caps = if cfg!(miri) {
                        vec![want.len(), want.len() + 16]
                    } else {
                        vec![want.len(), want.len() + 1, want.len() + 16]
                    };
                    for cap in caps {
                        assert_eq!(
                            check(&z, cap).as_ref(),
                            Some(&want),
                            "off {off} len {len} lit {lit} tail {tail}"
                        );
                    }
                    assert_eq!(check(&z, want.len() - 1), None);
                }
            }
        }
    }
}

/// The decoder inside zswap's compressor: a page or `EIO`.
#[test]
fn compressor_decodes_through_this_decoder() {
    use super::super::{Compressor, CompressorKind};
    use kbase::{Error, Gfp};
    let c = Compressor::new(CompressorKind::Lz4, 1, Gfp::KERNEL).unwrap();
    let page = *heap_like_page(9);
    let z = c.compress(0, &page, |r| r.unwrap().to_vec());
    let mut out = [0u8; PAGE_SIZE];
    assert_eq!(c.decompress(0, &z, &[], &mut out), Ok(()));
    assert_eq!(out, page);
    let bad = [&z[..], &[0x10, 1]].concat();
    assert_eq!(c.decompress(0, &bad, &[], &mut out), Err(Error::EIO));
}

/// The split decoder at every split point of `src` (every `step`-th, and
/// always the first and last 40, 3 under Miri) against
/// the one-part decoder of the whole: the same length and bytes, or both
/// `EIO`. Returns the one-part result.
#[track_caller]
fn check_splits(src: &[u8], cap: usize, step: usize) -> Option<Vec<u8>> {
    let whole = ours(src, cap);
    let n = src.len();
    let ends = if cfg!(miri) { 3 } else { 40 };
    let points = (0..=n)
        .step_by(step.max(1))
        .chain((0..=n).take(ends))
        .chain(n.saturating_sub(ends)..=n);
    let mut out = vec![0x3cu8; cap];
    for k in points {
        let (a, b) = src.split_at(k);
        let r = decompress_split(a, b, &mut out);
        match (&whole, r) {
            (Some(w), Ok(m)) => {
                assert_eq!(m, w.len(), "split at {k} of {n}: length");
                assert!(out[..m] == w[..], "split at {k} of {n}: bytes");
            }
            (None, Err(e)) => assert_eq!(e, kbase::Error::EIO, "split at {k} of {n}"),
            (w, r) => panic!(
                "split at {k} of {n}: whole {:?}, split {r:?}",
                w.as_ref().map(|v| v.len())
            ),
        }
    }
    whole
}

/// A split that leaves one part empty is the one-part decoder.
#[test]
fn split_with_an_empty_part_is_the_whole() {
    let (z, page) = sample_objects().swap_remove(0);
    let mut out = vec![0u8; PAGE_SIZE];
    assert_eq!(decompress_split(&z, &[], &mut out), Ok(PAGE_SIZE));
    assert_eq!(out, page);
    out.fill(0);
    assert_eq!(decompress_split(&[], &z, &mut out), Ok(PAGE_SIZE));
    assert_eq!(out, page);
    assert_eq!(decompress_split(&[], &[], &mut out), Err(kbase::Error::EIO));
}

/// Valid pages split at every byte: the page, into a page or a bigger
/// buffer; into a buffer a byte short, `EIO` at every split.
#[test]
fn valid_objects_split_at_every_point_decode_as_whole() {
    let step = if cfg!(miri) { 211 } else { 1 };
    for (z, page) in sample_objects() {
        assert_eq!(check_splits(&z, PAGE_SIZE, step), Some(page.clone()));
        assert_eq!(check_splits(&z, PAGE_SIZE - 1, step * 5), None);
        if !cfg!(miri) {
            assert_eq!(check_splits(&z, PAGE_SIZE + 40, 3), Some(page));
        }
    }
}

/// Damaged pages (truncated, bytes flipped, bytes appended) split at every
/// byte: the same result as whole, mostly `EIO`.
#[test]
fn damaged_objects_split_at_every_point_agree_with_whole() {
    let (z, _) = sample_objects().swap_remove(0);
    let (cuts, step): (Vec<usize>, usize) = if cfg!(miri) {
        (vec![z.len() / 2], 401)
    } else {
        ((0..z.len()).step_by(13).collect(), 1)
    };
    for &cut in &cuts {
        check_splits(&z[..cut], PAGE_SIZE, step);
    }
    let flips: Vec<usize> = if cfg!(miri) {
        vec![z.len() / 3]
    } else {
        (0..z.len()).step_by(29).collect()
    };
    for &i in &flips {
        let xs: &[u8] = if cfg!(miri) {
            &[0xff]
        } else {
            &[0x01, 0x10, 0xf0, 0xff]
        };
        for &x in xs {
            let mut d = z.clone();
            d[i] ^= x;
            check_splits(&d, PAGE_SIZE, step);
        }
    }
    let tails: &[&[u8]] = if cfg!(miri) {
        &[&[0x01, 0x00, 0x00]]
    } else {
        &[&[0x00], &[0x01, 0x00, 0x00], &[0xff; 7]]
    };
    for tail in tails {
        let zt = [&z[..], tail].concat();
        assert_eq!(check_splits(&zt, PAGE_SIZE, step), None);
    }
}

/// Every kind of sequence straddling the split, at every position of the
/// split inside it: long literal runs (their length bytes, their literals),
/// offsets, long match lengths, and a block ending right at or just after
/// the split; into buffers exact, roomy and short.
#[test]
fn sequences_straddling_the_split_at_every_byte() {
    let lit = noise(600, 21);
    let (lits, lens): (Vec<usize>, Vec<usize>) = if cfg!(miri) {
        (vec![0, 15, 300], vec![4, 19, 600])
    } else {
        (
            vec![0, 1, 14, 15, 16, 31, 32, 270, 271, 300, 600],
            vec![4, 18, 19, 20, 40, 273, 274, 600],
        )
    };
    for &l in &lits {
        for &len in &lens {
            let z = encode(&[
                Seq {
                    lit: &lit[..l.max(1)],
                    m: Some((1, len)),
                },
                Seq {
                    lit: &lit[..l],
                    m: Some((u16::try_from(l.max(1)).unwrap(), len)),
                },
                Seq {
                    lit: &lit[..l.min(20)],
                    m: None,
                },
            ]);
            let want = reference(&z, usize::MAX).unwrap();
            let step = if cfg!(miri) { 97 } else { 1 };
            for cap in [want.len(), want.len() + 33, want.len() - 1] {
                let r = check_splits(&z, cap, step);
                assert_eq!(
                    r.is_some(),
                    cap >= want.len(),
                    "lit {l} len {len} cap {cap}"
                );
            }
        }
    }
}

/// zswap's compressor decodes a split lz4 object (no context, no copy) to
/// the page at every split, and a damaged one to `EIO`.
#[test]
fn compressor_decodes_split_objects() {
    use super::super::{Compressor, CompressorKind};
    use kbase::{Error, Gfp};
    let c = Compressor::new(CompressorKind::Lz4, 1, Gfp::KERNEL).unwrap();
    let page = *heap_like_page(23);
    let z = c.compress(0, &page, |r| r.unwrap().to_vec());
    let step = if cfg!(miri) { 401 } else { 1 };
    let mut out = [0u8; PAGE_SIZE];
    for k in (0..=z.len()).step_by(step) {
        out.fill(0);
        let (a, b) = z.split_at(k);
        assert_eq!(c.decompress(0, a, b, &mut out), Ok(()), "split at {k}");
        assert!(out == page, "split at {k}");
        // The last byte missing: a literal run longer than its input.
        let (a, b) = z[..z.len() - 1].split_at(k.min(z.len() - 1));
        assert_eq!(
            c.decompress(0, a, b, &mut out),
            Err(Error::EIO),
            "split at {k}"
        );
    }
}

/// Pages shaped like memory, as bytes: the compressor's tests' pages
/// (`pages::any_page`).
fn any_page() -> impl Strategy<Value = Vec<u8>> {
    pages::any_page().prop_map(|p| p.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Valid objects: the page itself, as lz4_flex decodes it.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn prop_pages_round_trip_as_lz4_flex_decodes_them(page in any_page()) {
        let z = lz4_flex_compress(&page);
        let r = check(&z, PAGE_SIZE);
        prop_assert_eq!(r, Some(page));
    }

    /// Hand-built blocks (any offsets and lengths, valid or not) into any
    /// buffer size: ours, the reference and lz4_flex agree.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn prop_built_blocks_agree(
        seqs in prop::collection::vec((0usize..80, 0u16..200, 4usize..300), 0..24),
        tail in 0usize..40,
        slack in 0usize..40,
    ) {
        let lit = noise(80, 11);
        let mut v: Vec<Seq> = seqs
            .iter()
            .map(|&(l, off, len)| Seq { lit: &lit[..l], m: Some((off, len)) })
            .collect();
        v.push(Seq { lit: &lit[..tail], m: None });
        let z = encode(&v);
        let cap = reference(&z, usize::MAX).map_or(PAGE_SIZE, |o| o.len() + slack);
        check(&z, cap);
        check(&z, cap.saturating_sub(2 * slack));
    }

    /// Garbage: ours, the reference and lz4_flex agree (mostly on errors).
    #[test]
    #[cfg_attr(miri, ignore)]
    fn prop_garbage_agrees(z in prop::collection::vec(any::<u8>(), 0..600), cap in 0usize..5000) {
        check(&z, cap);
        check(&z, PAGE_SIZE);
    }

    /// Damaged objects: ours, the reference and lz4_flex agree.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn prop_damaged_objects_agree(
        page in any_page(),
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 1..6),
        cut in any::<usize>(),
    ) {
        let mut z = lz4_flex_compress(&page);
        for &(i, x) in &flips {
            let n = z.len();
            z[i % n] ^= x;
        }
        check(&z, PAGE_SIZE);
        let n = cut % (z.len() + 1);
        check(&z[..n], PAGE_SIZE);
    }

    /// Valid pages split anywhere: the page.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn prop_split_pages_decode_as_whole(page in any_page(), k in any::<usize>()) {
        let z = lz4_flex_compress(&page);
        let k = k % (z.len() + 1);
        let mut out = vec![0u8; PAGE_SIZE];
        prop_assert_eq!(decompress_split(&z[..k], &z[k..], &mut out), Ok(PAGE_SIZE));
        prop_assert!(out == page);
    }

    /// Damaged pages and garbage, split anywhere, into any buffer: the same
    /// as whole.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn prop_split_damaged_and_garbage_agree_with_whole(
        page in any_page(),
        flips in prop::collection::vec((any::<usize>(), 1..=255u8), 0..6),
        cut in any::<usize>(),
        garbage in prop::collection::vec(any::<u8>(), 0..300),
        cap in 0usize..5000,
    ) {
        let mut z = lz4_flex_compress(&page);
        for &(i, x) in &flips {
            let n = z.len();
            z[i % n] ^= x;
        }
        let n = cut % (z.len() + 1);
        check_splits(&z[..n], PAGE_SIZE, 7);
        check_splits(&z, cap, 11);
        check_splits(&garbage, cap, 1);
    }
}
