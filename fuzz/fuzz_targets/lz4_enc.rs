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

mod common;
use common::repeat_to_page;

thread_local! {
    static TABLE: RefCell<lz4_enc::Table> =
        RefCell::new(lz4_enc::Table::try_new().expect("table"));
}

/// A page from the input's program (`common::page_from`): runs of 1 to 511
/// bytes, copies of 5 to 260.
fn page_from(prog: &[u8]) -> Vec<u8> {
    common::page_from(
        prog,
        |arg| usize::from(arg) * 2 + 1,
        |arg| usize::from(arg) + 5,
    )
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
