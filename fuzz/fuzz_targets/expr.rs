//! The expression language of `expect` and computed values: parsing and
//! evaluating any text never panics or overflows the stack (the text is
//! also tried nested and chained thousands of times, deeper than coverage
//! guidance alone would go), and a literal evaluates to itself.
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

/// Grows `text` past what coverage guidance reaches: nested `k` levels deep
/// in parentheses, or chained `k` times with an operator. Parsing the
/// result must end (Ok or an error), never overflow the stack.
fn amplified(text: &str, how: u8) -> String {
    // At most about 256 KiB, so an execution stays fast.
    let k = ((how as usize % 64) * 256).min((256 << 10) / (text.len() + 3));
    if how & 0x40 == 0 {
        format!("{}{text}{}", "(".repeat(k), ")".repeat(k))
    } else {
        vec![text; k.max(1)].join(if how & 0x80 == 0 { " + " } else { " * " })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&how, rest)) = data.split_first() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        let big = amplified(text, how);
        if let Ok(e) = parse_expr(&big) {
            let _ = eval_expr(&e, &snapshot(1), &HashMap::new());
        }
        let _ = Expectation::parse(&format!("{big} > 0"));
    }
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
