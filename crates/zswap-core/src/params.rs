//! Runtime parameters (Linux: `/sys/module/zswap/parameters/*`).

use kbase::{Error, Result};

use crate::compress::CompressorKind;

/// The parameters, as given to [`crate::Zswap::new`] and returned by
/// [`crate::Zswap::params`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZswapParams {
    /// `enabled`: store new pages. Turning it off keeps stored entries.
    pub enabled: bool,
    /// `compressor`: the algorithm of the current pool.
    pub compressor: CompressorKind,
    /// `max_pool_percent`: pool limit, percent of the platform's RAM. A plain
    /// unsigned int as in Linux: above 100 is accepted (the pool limit is
    /// then above RAM, and only memory pressure bounds the pool).
    pub max_pool_percent: u32,
    /// `accept_threshold_percent`: once full, refuse stores until the pool is
    /// at or below this percent of the limit (a plain unsigned int: 100 or
    /// more disables the hysteresis, the check clamps naturally).
    pub accept_threshold_percent: u32,
    /// `shrinker_enabled`: the memory-pressure shrinker writes back.
    pub shrinker_enabled: bool,
}

impl Default for ZswapParams {
    /// Linux's defaults with `CONFIG_ZSWAP_DEFAULT_ON=y`: enabled, lz4, 20 %,
    /// 90 %, shrinker off (`CONFIG_ZSWAP_SHRINKER_DEFAULT_ON` unset).
    fn default() -> Self {
        ZswapParams {
            enabled: true,
            compressor: CompressorKind::Lz4,
            max_pool_percent: 20,
            accept_threshold_percent: 90,
            shrinker_enabled: false,
        }
    }
}

/// The parameter names accepted by [`crate::Zswap::set_param`].
pub const PARAM_NAMES: [&str; 5] = [
    "enabled",
    "compressor",
    "max_pool_percent",
    "accept_threshold_percent",
    "shrinker_enabled",
];

/// Parses a boolean like Linux's `kstrtobool`: `1 y Y on` / `0 n N off`,
/// surrounding whitespace ignored. `EINVAL` otherwise.
pub fn parse_bool(v: &str) -> Result<bool> {
    match v.trim_ascii() {
        "1" | "y" | "Y" | "yes" | "on" | "true" => Ok(true),
        "0" | "n" | "N" | "no" | "off" | "false" => Ok(false),
        _ => Err(Error::EINVAL),
    }
}

/// Parses an unsigned int parameter as Linux's `param_set_uint`
/// (`kstrtouint(value, 0)`): decimal, `0x`/`0X` hex or `0`-prefixed octal,
/// an optional leading `+`; surrounding ASCII whitespace (the `'\n'` of a
/// sysfs write) is ignored. Any `u32` is accepted, as Linux takes
/// `max_pool_percent = 150`. `EINVAL` otherwise (empty, negative, junk,
/// overflow).
pub fn parse_uint(v: &str) -> Result<u32> {
    let t = v.trim_ascii();
    let t = t.strip_prefix('+').unwrap_or(t);
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(o) = t.strip_prefix('0').filter(|o| !o.is_empty()) {
        (o, 8)
    } else {
        (t, 10)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::EINVAL);
    }
    u32::from_str_radix(digits, radix).map_err(|_| Error::EINVAL)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(parse_bool("Y\n"), Ok(true));
        assert_eq!(parse_bool("off"), Ok(false));
        assert_eq!(parse_bool("maybe"), Err(Error::EINVAL));
        assert_eq!(parse_uint(" 42\n"), Ok(42));
        // Plain unsigned ints, as Linux's param_set_uint takes them.
        assert_eq!(parse_uint("150"), Ok(150));
        assert_eq!(parse_uint("101"), Ok(101));
        assert_eq!(parse_uint("0x20"), Ok(32));
        assert_eq!(parse_uint("010"), Ok(8));
        assert_eq!(parse_uint("+7"), Ok(7));
        assert_eq!(parse_uint("0"), Ok(0));
        assert_eq!(parse_uint("4294967295"), Ok(u32::MAX));
        for bad in ["-1", "", "0x", "09", "12a", "4294967296", "1 2"] {
            assert_eq!(parse_uint(bad), Err(Error::EINVAL), "{bad:?}");
        }
    }
}
