//! The header's constants and structs agree with the crates underneath.

use kbase::{Error, Gfp, PAGE_SIZE};
use zswap_capi::*;

#[test]
fn errno_values_are_the_crates_and_linux_values() {
    let pairs = [
        (ZSWAP_ENOENT, Error::ENOENT),
        (ZSWAP_EIO, Error::EIO),
        (ZSWAP_EAGAIN, Error::EAGAIN),
        (ZSWAP_ENOMEM, Error::ENOMEM),
        (ZSWAP_EBUSY, Error::EBUSY),
        (ZSWAP_EEXIST, Error::EEXIST),
        (ZSWAP_EINVAL, Error::EINVAL),
        (ZSWAP_ENOSPC, Error::ENOSPC),
        (ZSWAP_EDEADLK, Error::EDEADLK),
    ];
    assert_eq!(
        pairs.len(),
        Error::ALL.len(),
        "an errno is missing from the header"
    );
    for (c, e) in pairs {
        assert_eq!(c, e.to_errno(), "{}", e.name());
    }
}

#[test]
fn gfp_bits_are_kbase_bits() {
    let pairs = [
        (ZSWAP_GFP_DIRECT_RECLAIM, Gfp::DIRECT_RECLAIM),
        (ZSWAP_GFP_KSWAPD_RECLAIM, Gfp::KSWAPD_RECLAIM),
        (ZSWAP_GFP_IO, Gfp::IO),
        (ZSWAP_GFP_FS, Gfp::FS),
        (ZSWAP_GFP_NORETRY, Gfp::NORETRY),
        (ZSWAP_GFP_NOWARN, Gfp::NOWARN),
        (ZSWAP_GFP_MOVABLE, Gfp::MOVABLE),
        (ZSWAP_GFP_ZERO, Gfp::ZERO),
        (ZSWAP_GFP_HIGHMEM, Gfp::HIGHMEM),
        (ZSWAP_GFP_NOFAIL, Gfp::NOFAIL),
        (ZSWAP_GFP_KERNEL, Gfp::KERNEL),
    ];
    let all = pairs[..pairs.len() - 1]
        .iter()
        .fold(0, |acc, (c, _)| acc | c);
    assert_eq!(
        all,
        Gfp::all().bits(),
        "a gfp bit is missing from the header"
    );
    for (c, g) in pairs {
        assert_eq!(c, g.bits(), "{g:?}");
    }
    assert_eq!(ZSWAP_PAGE_SIZE, PAGE_SIZE);
}

/// `struct zswap_stats` in the header holds every counter zswap-core keeps,
/// in its order: a counter added to `ZswapStats` must be added to the C
/// struct (crates/zswap-capi/src/api.rs, `zswap_stats` and `c_stats`) and
/// the header regenerated.
#[test]
fn stats_struct_has_every_counter() {
    let header = include_str!("../../../include/zswap.h");
    let body = header
        .split("struct zswap_stats {")
        .nth(1)
        .and_then(|s| s.split("};").next())
        .expect("struct zswap_stats in include/zswap.h");
    let fields: Vec<&str> = body
        .lines()
        .filter_map(|l| l.trim().strip_prefix("uint64_t "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    let names: Vec<&str> = zswap_core::ZswapStats::default()
        .iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        fields, names,
        "struct zswap_stats differs from zswap_core::ZswapStats: add the counter \
         to zswap_stats and c_stats in crates/zswap-capi/src/api.rs, then \
         ZSWAP_BLESS=1 cargo test -p zswap-capi --test header"
    );
}
