//! zswap's decompression on untrusted bytes: every outcome is a page or
//! `EIO`, never a panic, a hang or an access out of bounds (the fuzzer's
//! sanitizer checks the last).
//!
//! The first input byte picks the mode:
//!
//! - arbitrary bytes as an lz4 or a zstd object (the second byte picks),
//!   split in two at a point the input chooses (an object that spans two
//!   pool pages goes through the decompression scratch buffer), through
//!   `Compressor::decompress`;
//! - a real object, mutated: a page built from the input is swapped out
//!   into zswap, its stored object is changed in place at positions and by
//!   values the input chooses, and the page is swapped in through
//!   `Zswap::load`. The load returns the page (the damage still decoded to
//!   exactly one page; lz4 has no checksum) or fails with `EIO`, and then
//!   `decompress_fail` counted it and zswap still holds the entry.
#![no_main]

use std::sync::{Arc, OnceLock};

use kbase::{Error, Gfp, PAGE_SIZE};
use libfuzzer_sys::fuzz_target;
use zswap_core::{Compressor, CompressorKind};
use zswap_example_minimal::Kernel;

fn compressor(zstd: bool) -> &'static Compressor {
    static LZ4: OnceLock<Compressor> = OnceLock::new();
    static ZSTD: OnceLock<Compressor> = OnceLock::new();
    let (cell, kind) = if zstd {
        (&ZSTD, CompressorKind::Zstd)
    } else {
        (&LZ4, CompressorKind::Lz4)
    };
    cell.get_or_init(|| Compressor::new(kind, 1, Gfp::KERNEL).expect("compressor"))
}

/// One kernel for the whole run (its slots are freed after each input).
fn kernel() -> &'static Kernel {
    static K: OnceLock<Arc<Kernel>> = OnceLock::new();
    K.get_or_init(|| Kernel::boot(64).expect("boot"))
}

/// A page from the input: its bytes repeated, in runs so it compresses.
fn page_from(data: &[u8]) -> Box<[u8; PAGE_SIZE]> {
    let mut page = Box::new([0u8; PAGE_SIZE]);
    if data.is_empty() {
        return page;
    }
    for (i, b) in page.iter_mut().enumerate() {
        *b = data[(i / 8) % data.len()];
    }
    page
}

fn arbitrary_object(data: &[u8]) {
    let [pick, split, obj @ ..] = data else {
        return;
    };
    let (pick, split) = (*pick, *split);
    let at = if obj.is_empty() {
        0
    } else {
        split as usize % (obj.len() + 1)
    };
    let (a, b) = obj.split_at(at);
    let mut dst = Box::new([0u8; PAGE_SIZE]);
    let zstd = pick & 1 == 1 && CompressorKind::Zstd.is_available();
    match compressor(zstd).decompress(0, a, b, &mut dst) {
        Ok(()) | Err(Error::EIO) => {}
        Err(e) => panic!("decompress gave {e:?}, not a page or EIO"),
    }
}

fn mutated_object(data: &[u8]) {
    let (Some(&nr), Some(rest)) = (data.first(), data.get(1..)) else {
        return;
    };
    // Up to 16 (position, xor) pairs from the front; the page from the rest.
    let nr = (nr as usize % 16 + 1).min(rest.len() / 3);
    let (muts, body) = rest.split_at(nr * 3);
    let page = page_from(body);
    let k = kernel();
    let Ok(swp) = k.swap_out(&page) else {
        return;
    };
    if !k.zswap.is_present(swp) {
        // A zero page (the swap core keeps it) or one on the device.
        let _ = k.swap_in(swp);
        return;
    }
    let r = k.zswap.debug_mutate_object(swp, |obj| {
        for m in muts.chunks_exact(3) {
            let pos = u16::from_le_bytes([m[0], m[1]]) as usize;
            if let Some(b) = obj.get_mut(pos % obj.len().max(1)) {
                *b ^= m[2];
            }
        }
    });
    assert_eq!(r, Ok(()), "a stored page has an object");
    let before = k.zswap.stats().decompress_fail;
    match k.swap_in(swp) {
        Ok(_) => {}
        Err(Error::EIO) => {
            assert_eq!(k.zswap.stats().decompress_fail, before + 1);
            assert!(k.zswap.is_present(swp), "EIO must keep the entry");
            // The slot is freed as a kernel frees it: the entry goes.
            k.swap.swap_free(swp).expect("swap_free");
            assert!(!k.zswap.is_present(swp));
        }
        Err(e) => panic!("load gave {e:?}, not a page or EIO"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        arbitrary_object(rest);
    } else {
        mutated_object(rest);
    }
});
