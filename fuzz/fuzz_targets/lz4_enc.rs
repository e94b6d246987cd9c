//! zswap's lz4 page encoder (`zswap_core::compress::lz4_enc`) on arbitrary
//! pages: every block decodes to the page, through zswap's own decoder and
//! `lz4_flex`'s safe decoder; it is never longer than LZ4's bound; a table
//! reused across inputs (as each CPU reuses its own) gives the same bytes
//! as a fresh one; and the encoder never reads or writes outside its
//! buffers (the sanitizer checks that).
//!
//! Input: a mode byte, then
//!
//! - (mode bit 0 clear) the page's bytes: up to 4096, the rest of the page
//!   the input repeated (or zeros for an empty input), or
//! - (bit 0 set) a little program building the page from literals, byte
//!   runs and copies from earlier in the page (matches of many offsets and
//!   lengths, as real memory has).
#![no_main]

use std::cell::RefCell;

use kbase::PAGE_SIZE;
use libfuzzer_sys::fuzz_target;
use zswap_core::compress::{lz4_block, lz4_enc};

thread_local! {
    static TABLE: RefCell<lz4_enc::Table> =
        RefCell::new(lz4_enc::Table::try_new().expect("table"));
}

/// A page from pairs (op, arg): push a literal, repeat the last byte, or
/// copy from up to 256 bytes back; the rest of the page repeats what was
/// built (or is zero if nothing was).
fn page_from(prog: &[u8]) -> Vec<u8> {
    let mut p: Vec<u8> = Vec::with_capacity(PAGE_SIZE + 600);
    let mut it = prog.chunks_exact(2);
    while p.len() < PAGE_SIZE {
        let Some(&[op, arg]) = it.next() else { break };
        match op % 4 {
            0 | 3 => p.push(arg),
            1 => {
                let b = p.last().copied().unwrap_or(arg);
                p.extend(std::iter::repeat_n(b, usize::from(arg) * 2 + 1));
            }
            _ => {
                let back = usize::from(op >> 2) * 4 + 1;
                if back <= p.len() {
                    for _ in 0..usize::from(arg) + 5 {
                        p.push(p[p.len() - back]);
                    }
                } else {
                    p.push(arg);
                }
            }
        }
    }
    repeat_to_page(p)
}

/// `p` cut or repeated to one page (zeros if empty).
fn repeat_to_page(mut p: Vec<u8>) -> Vec<u8> {
    let built = p.len();
    for i in built..PAGE_SIZE {
        let b = if built == 0 { 0 } else { p[i % built] };
        p.push(b);
    }
    p.truncate(PAGE_SIZE);
    p
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    let page = if mode & 1 == 0 {
        repeat_to_page(rest[..rest.len().min(PAGE_SIZE)].to_vec())
    } else {
        page_from(rest)
    };
    let page: &[u8; PAGE_SIZE] = page.as_slice().try_into().expect("one page");

    let mut z = Box::new([0u8; lz4_enc::DST_LEN]);
    let n = TABLE
        .with(|t| lz4_enc::compress(page, &mut t.borrow_mut(), &mut z))
        .expect("every page compresses");
    assert!(n <= lz4_enc::BOUND, "{n} bytes, above the bound");
    let block = &z[..n];

    let mut fresh_table = lz4_enc::Table::try_new().expect("table");
    let mut z2 = Box::new([0u8; lz4_enc::DST_LEN]);
    let m = lz4_enc::compress(page, &mut fresh_table, &mut z2).expect("compress");
    assert!(block == &z2[..m], "a reused table changed the block");

    let mut out = vec![0xa5u8; PAGE_SIZE];
    assert_eq!(lz4_block::decompress(block, &mut out), Ok(PAGE_SIZE));
    assert!(out[..] == page[..], "zswap's decoder: round trip changed the page");
    let mut out2 = vec![0x5au8; PAGE_SIZE];
    assert_eq!(lz4_flex::block::decompress_into(block, &mut out2).ok(), Some(PAGE_SIZE));
    assert!(out2[..] == page[..], "lz4_flex's decoder: round trip changed the page");
});
