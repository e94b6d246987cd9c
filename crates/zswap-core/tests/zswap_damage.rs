//! Damaged stored objects: the test hook the decompression fuzz target
//! uses (`debug_mutate_object`) and what load does with what it leaves.
#![cfg(not(loom))]

mod common;

use common::*;
use kbase::Error;

#[test]
fn an_untouched_object_still_loads_and_a_damaged_one_gives_eio() {
    let k = Kernel::default_kernel();
    let page = compressible(3);
    let x = k.swap_out_stored(&page, None);
    // Reading the object out and writing it back unchanged keeps the page.
    let mut len = 0;
    k.zswap
        .debug_mutate_object(x, |obj| len = obj.len())
        .unwrap();
    assert!(len > 0 && len < page.len(), "a compressed object");
    let y = k.swap_out_stored(&compressible(4), None);
    // Every byte flipped: no lz4 block decodes to exactly this page's size.
    k.zswap
        .debug_mutate_object(y, |obj| obj.iter_mut().for_each(|b| *b ^= 0xa5))
        .unwrap();
    assert_eq!(&k.swap_in(x).unwrap()[..], &page[..]);
    assert_eq!(k.swap_in(y).unwrap_err(), Error::EIO);
    let s = k.zswap.stats();
    assert_eq!((s.decompress_fail, s.stored_pages), (1, 1));
    assert!(k.zswap.is_present(y), "EIO keeps the entry");
    k.release(y);
    assert_eq!(k.zswap.stats().stored_pages, 0);
    assert_eq!(k.zswap.debug_mutate_object(y, |_| {}), Err(Error::ENOENT));
}
