//! The expression language of `expect` and computed values: parsing and
//! evaluating any text never panics or overflows the stack, and values are
//! what the arithmetic says.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use zswap_sim::expect::{Expectation, eval_expr, parse_expr};
use zswap_sim::stats::{Num, Snapshot, StatMap};

fn snapshot(scale: u64) -> Snapshot {
    let mut s = Snapshot::default();
    s.global
        .insert("stored_pages".into(), Num::Int(100 * scale));
    s.global.insert("compression_ratio".into(), Num::Float(2.5));
    s.global.insert("zero".into(), Num::Int(0));
    s.global.insert("huge".into(), Num::Int(u64::MAX));
    let mut a = StatMap::new();
    a.insert("zswpout".into(), Num::Int(7 * scale));
    a.insert("memory.zswap.current".into(), Num::Int(8192 * scale));
    s.cgroups.insert("a".into(), a.clone());
    s.cgroups.insert("a/b".into(), a.clone());
    s.cgroups.insert("root".into(), a);
    s
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = snapshot(1);
    let mut labelled = HashMap::new();
    labelled.insert("l".to_string(), snapshot(2));
    labelled.insert("after-alloc".to_string(), snapshot(3));
    // A computed value: `= EXPR`.
    if let Ok(e) = parse_expr(text.strip_prefix('=').unwrap_or(text)) {
        match eval_expr(&e, &now, &labelled) {
            Ok(v) => {
                // A literal alone evaluates to itself.
                if let zswap_sim::expect::Expr::Num(n) = e {
                    assert!(v == n || (v.is_nan() && n.is_nan()));
                }
            }
            Err(r) => assert!(!r.is_empty()),
        }
    }
    if let Ok(x) = Expectation::parse(text) {
        for r in x.refs() {
            assert!(!r.scope.is_empty() && !r.name.is_empty());
        }
        match x.check(&now, &labelled) {
            Ok(c) => assert_eq!(c.expect, text),
            Err(r) => assert!(!r.is_empty()),
        }
    }
});
