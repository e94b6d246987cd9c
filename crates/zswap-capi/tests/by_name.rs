//! The C ABI driven from Rust through the rlib: a platform of `extern "C"`
//! hooks over heap pages; every counter zswap keeps reads the same by name
//! (`zswap_get_stat`) as in the struct (`zswap_get_stats`).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ffi::{CString, c_int, c_void};
use std::sync::Mutex;

use zswap_capi::*;

const PAGE: Layout = match Layout::from_size_align(ZSWAP_PAGE_SIZE, ZSWAP_PAGE_SIZE) {
    Ok(l) => l,
    Err(_) => panic!("page layout"),
};

/// The device: written pages by offset.
static DEVICE: Mutex<Vec<(u64, Vec<u8>)>> = Mutex::new(Vec::new());

unsafe extern "C" fn alloc_page(_: *mut c_void, _: u32) -> *mut c_void {
    // SAFETY: PAGE has a non-zero size.
    unsafe { alloc_zeroed(PAGE).cast() }
}

unsafe extern "C" fn free_page(_: *mut c_void, page: *mut c_void) {
    // SAFETY: zswap frees only pages `alloc_page` gave it, with PAGE.
    unsafe { dealloc(page.cast(), PAGE) }
}

unsafe extern "C" fn totalram(_: *mut c_void) -> u64 {
    1 << 16
}

unsafe extern "C" fn swap_write(_: *mut c_void, _: u32, offset: u64, page: *const c_void) -> c_int {
    // SAFETY: zswap passes a page valid for ZSWAP_PAGE_SIZE bytes.
    let p = unsafe { std::slice::from_raw_parts(page.cast::<u8>(), ZSWAP_PAGE_SIZE) };
    DEVICE.lock().unwrap().push((offset, p.to_vec()));
    0
}

fn platform() -> zswap_platform {
    zswap_platform {
        ctx: std::ptr::null_mut(),
        alloc_page: Some(alloc_page),
        free_page: Some(free_page),
        current_cpu: None,
        nr_cpus: None,
        totalram_pages: Some(totalram),
        swap_write: Some(swap_write),
        swap_read: None,
        slot_freed: None,
        queue_shrink_work: None,
        charge_swapin: None,
        writeback_done: None,
        swapcache_wait: None,
        nr_nodes: None,
        page_to_nid: None,
    }
}

#[test]
fn every_counter_is_readable_by_name_and_matches_the_struct() {
    let plat = platform();
    let mut z: *mut zswap = std::ptr::null_mut();
    // SAFETY: valid platform and out pointer.
    assert_eq!(unsafe { zswap_create(&plat, 0, &mut z) }, 0);
    let mut t = 0u32;
    // SAFETY: a live handle and a valid out pointer.
    assert_eq!(unsafe { zswap_swapon(z, 64, &mut t) }, 0);
    let mut slots = Vec::new();
    for i in 0..8u8 {
        let (mut st, mut off) = (0u32, 0u64);
        // SAFETY: valid out pointers.
        assert_eq!(unsafe { zswap_swap_alloc(z, &mut st, &mut off) }, 0);
        let mut page = vec![0u8; ZSWAP_PAGE_SIZE];
        page.iter_mut().step_by(64).for_each(|b| *b = i + 1);
        // SAFETY: `page` holds ZSWAP_PAGE_SIZE bytes.
        let rc = unsafe { zswap_store(z, st, off, page.as_ptr().cast(), 0) };
        assert_eq!(rc, 0);
        slots.push((st, off, page));
    }
    assert_eq!(zswap_writeback(z, slots[0].0, slots[0].1), 0);
    assert_eq!(DEVICE.lock().unwrap().len(), 1);
    assert_eq!(DEVICE.lock().unwrap()[0].1, slots[0].2);

    let mut s = zswap_stats::default();
    // SAFETY: a live handle and a valid out pointer.
    assert_eq!(unsafe { zswap_get_stats(z, &mut s) }, 0);
    assert_eq!((s.stored_pages, s.zswpout, s.written_back_pages), (7, 8, 1));
    let by_struct = [
        ("stored_pages", s.stored_pages),
        ("zswpout", s.zswpout),
        ("written_back_pages", s.written_back_pages),
        ("pool_total_size", s.pool_total_size),
        ("zswpwb", s.zswpwb),
    ];
    for (name, _) in zswap_core::ZswapStats::default().iter() {
        let c = CString::new(name).unwrap();
        let mut v = u64::MAX;
        // SAFETY: NUL-terminated name, valid out pointer.
        let rc = unsafe { zswap_get_stat(z, c.as_ptr(), &mut v) };
        assert_eq!(rc, 0, "{name}");
        if let Some((_, want)) = by_struct.iter().find(|(n, _)| *n == name) {
            assert_eq!(v, *want, "{name}");
        }
    }
    for (st, off, page) in &slots[1..] {
        let mut out = vec![0u8; ZSWAP_PAGE_SIZE];
        // SAFETY: `out` holds ZSWAP_PAGE_SIZE bytes.
        let rc = unsafe { zswap_load(z, *st, *off, out.as_mut_ptr().cast()) };
        assert_eq!(rc, 0);
        assert_eq!(&out, page);
    }
    for (st, off, _) in &slots {
        assert_eq!(zswap_swap_free(z, *st, *off), 0);
    }
    assert_eq!(zswap_swapoff(z, t), 0);
    // SAFETY: a live handle; no other call on it runs.
    assert_eq!(unsafe { zswap_destroy(z) }, 0);
    // SAFETY: only live handles are dereferenced.
    assert_eq!(unsafe { zswap_destroy(z) }, -ZSWAP_EINVAL);
}
