//! zswap's lz4 block decoder (`zswap_core::compress::lz4_block`) against
//! `lz4_flex`'s safe decoder (this crate turns on its `safe-decode`): on
//! every input both succeed with the same bytes, or both fail (ours with
//! `EIO`); and ours never reads or writes outside its buffers (the
//! sanitizer checks that).
//!
//! Also the same block split in two at a point the input chooses, through
//! `lz4_block::decompress_split` (the two parts in allocations of their own,
//! so reading past the first part's end is caught): exactly the one-part
//! result, the same bytes or `EIO`.
//!
//! Input: a mode byte, two bytes of output size and two of split point, then
//!
//! - (mode bit 0 clear) arbitrary bytes as a block, or
//! - (bit 0 set) a valid block, damaged: a page is built from the input
//!   (literal bytes, byte runs and copies from earlier in the page, so it
//!   has matches of many offsets and lengths), compressed with `lz4_flex`,
//!   then up to 16 bytes of it changed at positions and by values the input
//!   chooses (no changes at all when the count is zero), and optionally cut
//!   short.
//!
//! The output buffer is zswap's page (bit 1 clear) or the size the input
//! chooses, 0 to 8191 bytes (bit 1 set).
#![no_main]

use kbase::{Error, PAGE_SIZE};
use libfuzzer_sys::fuzz_target;
use zswap_core::compress::lz4_block;

mod common;

fn compare(src: &[u8], cap: usize, split: usize) {
    let mut ours = vec![0xa5u8; cap];
    let mut theirs = vec![0x5au8; cap];
    let a = lz4_block::decompress(src, &mut ours);
    let b = lz4_flex::block::decompress_into(src, &mut theirs);
    match (a, b) {
        (Ok(n), Ok(m)) => {
            assert_eq!(n, m, "output lengths differ");
            assert!(ours[..n] == theirs[..n], "outputs differ");
        }
        (Err(e), Err(_)) => assert_eq!(e, Error::EIO),
        (a, b) => panic!("ours {a:?}, lz4_flex {b:?}"),
    }
    let k = split % (src.len() + 1);
    let (head, tail) = (src[..k].to_vec(), src[k..].to_vec());
    let mut parts = vec![0x3cu8; cap];
    match (a, lz4_block::decompress_split(&head, &tail, &mut parts)) {
        (Ok(n), Ok(m)) => {
            assert_eq!(n, m, "split at {k}: output lengths differ");
            assert!(ours[..n] == parts[..n], "split at {k}: outputs differ");
        }
        (Err(_), Err(e)) => assert_eq!(e, Error::EIO),
        (a, s) => panic!("split at {k}: whole {a:?}, split {s:?}"),
    }
}

/// A page from the input's program (`common::page_from`): runs of 1 to 64
/// bytes, copies of 4 to 67.
fn page_from(prog: &[u8]) -> Vec<u8> {
    common::page_from(
        prog,
        |arg| usize::from(arg % 64) + 1,
        |arg| usize::from(arg % 64) + 4,
    )
}

fn damaged_block(data: &[u8], cap: usize, split: usize) {
    let [nr, cut, rest @ ..] = data else {
        return;
    };
    let nr = (usize::from(*nr) % 17).min(rest.len() / 3);
    let (muts, prog) = rest.split_at(nr * 3);
    let page = page_from(prog);
    let mut z = vec![0u8; lz4_flex::block::get_maximum_output_size(PAGE_SIZE)];
    let n = lz4_flex::block::compress_into(&page, &mut z).expect("compress");
    z.truncate(n);
    if nr == 0 && *cut == 0 {
        // Undamaged: both decode the page itself.
        let mut out = vec![0u8; PAGE_SIZE];
        assert_eq!(lz4_block::decompress(&z, &mut out), Ok(PAGE_SIZE));
        assert!(out == page, "valid block decoded wrong");
        let k = split % (z.len() + 1);
        let (head, tail) = (z[..k].to_vec(), z[k..].to_vec());
        out.fill(0);
        assert_eq!(lz4_block::decompress_split(&head, &tail, &mut out), Ok(PAGE_SIZE));
        assert!(out == page, "valid block split at {k} decoded wrong");
    }
    for m in muts.chunks_exact(3) {
        let pos = usize::from(u16::from_le_bytes([m[0], m[1]])) % z.len();
        z[pos] ^= m[2];
    }
    if *cut != 0 {
        z.truncate(z.len() - usize::from(*cut) % z.len());
    }
    compare(&z, cap, split);
}

fuzz_target!(|data: &[u8]| {
    let [mode, c0, c1, s0, s1, rest @ ..] = data else {
        return;
    };
    let split = usize::from(u16::from_le_bytes([*s0, *s1]));
    let cap = if mode & 2 == 0 {
        PAGE_SIZE
    } else {
        usize::from(u16::from_le_bytes([*c0, *c1])) % (2 * PAGE_SIZE)
    };
    if mode & 1 == 0 {
        compare(rest, cap, split);
    } else {
        damaged_block(rest, cap, split);
    }
});
