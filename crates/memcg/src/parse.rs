//! Parsing of the values written to the cgroup files.
//!
//! cgroup v2 accepts, for `memory.max`, `memory.zswap.max` and
//! `memory.reclaim`, either the word `max` (limits only) or a byte count with
//! an optional binary suffix (`K`, `M`, `G`, `T`, `P`, `E`, either case), as
//! `memparse()` reads it. Limits are then rounded down to whole pages
//! (`page_counter_memparse()`). A trailing newline, as `echo` writes it, is
//! accepted. Anything else, including a sign, is `EINVAL`.

use kbase::{Error, PAGE_SIZE, Result};

/// The value of an unlimited counter (`max` in the files): Linux's
/// `PAGE_COUNTER_MAX`, here in the unit of the counter (bytes or pages).
pub const PAGE_COUNTER_MAX: u64 = u64::MAX;

/// Strips one trailing newline and surrounding blanks.
fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\n')
}

/// Parses a byte count with an optional binary suffix (`"8M"`, `"4096"`,
/// `"1g"`): Linux's `memparse()`, decimal only. `EINVAL` on an empty string,
/// a sign, an unknown suffix, trailing garbage or overflow.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let s = trim(s);
    let digits_end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    let (digits, suffix) = s.split_at_checked(digits_end).ok_or(Error::EINVAL)?;
    if digits.is_empty() {
        return Err(Error::EINVAL);
    }
    let mut value: u64 = 0;
    for b in digits.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(Error::EINVAL)?;
    }
    let shift = match suffix {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        "p" | "P" => 50,
        "e" | "E" => 60,
        _ => return Err(Error::EINVAL),
    };
    value.checked_mul(1u64 << shift).ok_or(Error::EINVAL)
}

/// Parses a limit file value into whole pages: `"max"` is
/// [`PAGE_COUNTER_MAX`], bytes are rounded down to pages
/// (`page_counter_memparse()`).
pub fn parse_limit_pages(s: &str) -> Result<u64> {
    if trim(s) == "max" {
        return Ok(PAGE_COUNTER_MAX);
    }
    Ok(parse_bytes(s)? / PAGE_SIZE as u64)
}

/// Parses a boolean file value (`memory.zswap.writeback`): `"0"` or `"1"`.
pub fn parse_bool01(s: &str) -> Result<bool> {
    match trim(s) {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(Error::EINVAL),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parse_bytes_accepts_cgroup_v2_forms() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("8M\n"), Ok(8 << 20));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("0"), Ok(0));
    }

    #[test]
    fn parse_bytes_rejects_bad_input() {
        for bad in [
            "",
            "-1",
            "+5",
            "1X",
            "M",
            "1.5M",
            "12 34",
            "max",
            "99999999999999999999",
            "16E",
        ] {
            assert_eq!(parse_bytes(bad), Err(Error::EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn limits_round_down_to_pages() {
        assert_eq!(parse_limit_pages("max"), Ok(PAGE_COUNTER_MAX));
        assert_eq!(parse_limit_pages("10K"), Ok(2));
        assert_eq!(parse_limit_pages("4095"), Ok(0));
        assert_eq!(parse_limit_pages("-4096"), Err(Error::EINVAL));
    }

    #[test]
    fn bool01() {
        assert_eq!(parse_bool01("0\n"), Ok(false));
        assert_eq!(parse_bool01("1"), Ok(true));
        assert_eq!(parse_bool01("2"), Err(Error::EINVAL));
        assert_eq!(parse_bool01("yes"), Err(Error::EINVAL));
    }
}
