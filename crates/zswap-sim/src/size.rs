//! Sizes as users write them: `"64M"`, `"4K"`, `"1G"`, `"4096"`, `"max"`.

use kbase::PAGE_SIZE;

/// Parses a size in bytes: a number with an optional `K`, `M`, `G` or `T`
/// suffix (powers of 1024; `KiB`/`MiB`/`KB` spellings accepted).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits_end == 0 {
        return Err(format!(
            "bad size {s:?}: expected a number like 64M, 4K or 4096"
        ));
    }
    let n: u64 = t[..digits_end]
        .parse()
        .map_err(|_| format!("bad size {s:?}: number too large"))?;
    let shift = match t[digits_end..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        other => {
            return Err(format!(
                "bad size {s:?}: unknown suffix {other:?} (use K, M, G or T)"
            ));
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("bad size {s:?}: too large"))
}

/// Parses a limit: `"max"` (None) or a size.
pub fn parse_limit(s: &str) -> Result<Option<u64>, String> {
    if s.trim() == "max" {
        Ok(None)
    } else {
        parse_bytes(s).map(Some)
    }
}

/// Bytes to pages, rounding up.
pub fn bytes_to_pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE as u64)
}

/// A byte count for people: `"32.0 MiB"`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64M"), Ok(64 << 20));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert!(parse_bytes("M").is_err());
        assert!(parse_bytes("-1").is_err());
        assert!(parse_bytes("3X").is_err());
        assert!(parse_bytes("99999999999999999999T").is_err());
        assert_eq!(parse_limit("max"), Ok(None));
        assert_eq!(bytes_to_pages(4097), 2);
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
