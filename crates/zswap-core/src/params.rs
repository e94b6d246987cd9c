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
    /// `max_pool_percent`: pool limit, percent of the platform's RAM (0..=100).
    pub max_pool_percent: u32,
    /// `accept_threshold_percent`: once full, refuse stores until the pool is
    /// at or below this percent of the limit (0..=100; 100 disables the
    /// hysteresis).
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

/// Parses a percentage in `0..=100`. `EINVAL` otherwise.
pub fn parse_percent(v: &str) -> Result<u32> {
    let n: u32 = v.trim_ascii().parse().map_err(|_| Error::EINVAL)?;
    if n > 100 {
        return Err(Error::EINVAL);
    }
    Ok(n)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert_eq!(parse_bool("Y\n"), Ok(true));
        assert_eq!(parse_bool("off"), Ok(false));
        assert_eq!(parse_bool("maybe"), Err(Error::EINVAL));
        assert_eq!(parse_percent(" 42\n"), Ok(42));
        assert_eq!(parse_percent("101"), Err(Error::EINVAL));
        assert_eq!(parse_percent("-1"), Err(Error::EINVAL));
        assert_eq!(parse_percent(""), Err(Error::EINVAL));
    }
}
