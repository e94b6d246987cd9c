//! zswap's lz4 block decoder (`zswap_core::compress::lz4_block`) against
//! `lz4_flex`'s safe decoder (this crate turns on its `safe-decode`): on
//! every input both succeed with the same bytes, or both fail (ours with
//! `EIO`); and ours never reads or writes outside its buffers (the
//! sanitizer checks that).
//!
//! Input: a mode byte and two bytes of output size, then
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

fn compare(src: &[u8], cap: usize) {
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
}

/// A page from a little program: pairs (op, arg) push a literal, repeat
/// the last byte, or copy from up to 256 bytes back; the rest of the page
/// repeats what was built (or is zero if nothing was).
fn page_from(prog: &[u8]) -> Vec<u8> {
    let mut p: Vec<u8> = Vec::with_capacity(PAGE_SIZE + 64);
    let mut it = prog.chunks_exact(2);
    while p.len() < PAGE_SIZE {
        let Some(&[op, arg]) = it.next() else { break };
        match op % 4 {
            0 | 3 => p.push(arg),
            1 => {
                let b = p.last().copied().unwrap_or(arg);
                p.extend(std::iter::repeat_n(b, usize::from(arg % 64) + 1));
            }
            _ => {
                let back = usize::from(op >> 2) * 4 + 1;
                if back <= p.len() {
                    for _ in 0..usize::from(arg % 64) + 4 {
                        p.push(p[p.len() - back]);
                    }
                } else {
                    p.push(arg);
                }
            }
        }
    }
    let built = p.len();
    for i in built..PAGE_SIZE {
        let b = if built == 0 { 0 } else { p[i % built] };
        p.push(b);
    }
    p.truncate(PAGE_SIZE);
    p
}

fn damaged_block(data: &[u8], cap: usize) {
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
    }
    for m in muts.chunks_exact(3) {
        let pos = usize::from(u16::from_le_bytes([m[0], m[1]])) % z.len();
        z[pos] ^= m[2];
    }
    if *cut != 0 {
        z.truncate(z.len() - usize::from(*cut) % z.len());
    }
    compare(&z, cap);
}

fuzz_target!(|data: &[u8]| {
    let [mode, c0, c1, rest @ ..] = data else {
        return;
    };
    let cap = if mode & 2 == 0 {
        PAGE_SIZE
    } else {
        usize::from(u16::from_le_bytes([*c0, *c1])) % (2 * PAGE_SIZE)
    };
    if mode & 1 == 0 {
        compare(rest, cap);
    } else {
        damaged_block(rest, cap);
    }
});
