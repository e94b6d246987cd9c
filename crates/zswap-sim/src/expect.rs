//! Expectations: `"a.zswpout > 0"`, `"global.stored_pages >= 100"`,
//! `"a.zswpwb == @after-alloc.a.zswpwb"`, `"a.memory.swap.peak >= 8M"`.
//!
//! Grammar (operators need spaces around them when they touch a name, since
//! `-` and `/` may appear in cgroup paths and labels):
//!
//! ```text
//! expectation := expr CMP expr            CMP: == != < <= > >=
//! expr        := term (('+' | ' - ') term)*
//! term        := factor (('*' | ' / ') factor)*
//! factor      := NUMBER[K|M|G] | REF | '(' expr ')'
//! REF         := ['@' LABEL '.'] SCOPE '.' STAT
//! SCOPE       := 'global' | a cgroup path ('a', 'a/b', 'root')
//! ```
//!
//! A plain reference reads the snapshot taken right after the step that
//! holds the expectation; `@LABEL.` reads the snapshot of the step labelled
//! LABEL (an earlier step).
//!
//! Limits: an expression is at most [`MAX_EXPR_BYTES`] bytes, with at most
//! [`MAX_OPERANDS`] numbers and counters and at most [`MAX_DEPTH`] nested
//! parentheses. Past them parsing fails with a reason; within them the
//! tree is at most `MAX_OPERANDS` deep, so evaluating and dropping it
//! recurse a bounded number of times.

use crate::stats::Snapshot;
use std::collections::HashMap;

/// The longest expression or expectation text, in bytes.
pub const MAX_EXPR_BYTES: usize = 4096;
/// The most numbers and counters in one expectation or expression.
pub const MAX_OPERANDS: usize = 256;
/// The deepest nesting of parentheses.
pub const MAX_DEPTH: usize = 32;

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A counter reference.
#[derive(Clone, Debug, PartialEq)]
pub struct StatRef {
    /// `Some(label)` for `@label.` references.
    pub label: Option<String>,
    /// `global` or a cgroup path.
    pub scope: String,
    /// The counter's name (`zswpout`, `memory.zswap.current`).
    pub name: String,
}

/// An arithmetic expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A literal.
    Num(f64),
    /// A counter.
    Ref(StatRef),
    /// `a op b` with op one of `+ - * /`.
    Bin(Box<Expr>, char, Box<Expr>),
}

/// One parsed expectation.
#[derive(Clone, Debug)]
pub struct Expectation {
    /// As written.
    pub text: String,
    /// Left side.
    pub lhs: Expr,
    /// Comparison.
    pub cmp: Cmp,
    /// Right side.
    pub rhs: Expr,
}

/// The outcome of checking one expectation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Checked {
    /// As written.
    pub expect: String,
    /// Did it hold?
    pub ok: bool,
    /// The left side's value.
    pub lhs: f64,
    /// The right side's value.
    pub rhs: f64,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Word(String),
    Op(char),
    Cmp(Cmp),
    LParen,
    RParen,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    if s.len() > MAX_EXPR_BYTES {
        return Err(format!(
            "too long: {} bytes (at most {MAX_EXPR_BYTES})",
            s.len()
        ));
    }
    let mut out = Vec::new();
    let mut operands = 0usize;
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '+' | '*' => {
                out.push(Tok::Op(c));
                i += 1;
            }
            '<' | '>' | '=' | '!' => {
                let two = chars.get(i + 1) == Some(&'=');
                let cmp = match (c, two) {
                    ('<', true) => Cmp::Le,
                    ('<', false) => Cmp::Lt,
                    ('>', true) => Cmp::Ge,
                    ('>', false) => Cmp::Gt,
                    ('=', true) => Cmp::Eq,
                    ('!', true) => Cmp::Ne,
                    _ => {
                        return Err(format!(
                            "unexpected {c:?} (comparisons are == != < <= > >=)"
                        ));
                    }
                };
                out.push(Tok::Cmp(cmp));
                i += if two { 2 } else { 1 };
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], '(' | ')' | '+' | '*' | '<' | '>' | '=' | '!')
                {
                    i += 1;
                }
                let w: String = chars[start..i].iter().collect();
                if w != "-" && w != "/" {
                    operands += 1;
                    if operands > MAX_OPERANDS {
                        return Err(format!(
                            "too many terms: more than {MAX_OPERANDS} numbers and counters"
                        ));
                    }
                }
                if w == "-" || w == "/" {
                    out.push(Tok::Op(w.chars().next().unwrap_or('-')));
                } else if w.starts_with(|c: char| c.is_ascii_digit()) {
                    out.push(Tok::Num(parse_number(&w)?));
                } else {
                    out.push(Tok::Word(w));
                }
            }
        }
    }
    Ok(out)
}

fn parse_number(w: &str) -> Result<f64, String> {
    if let Ok(v) = w.parse::<f64>() {
        return Ok(v);
    }
    crate::size::parse_bytes(w)
        .map(|v| v as f64)
        .map_err(|_| format!("bad number {w:?}"))
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// Parentheses open around the current position.
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn expr(&mut self) -> Result<Expr, String> {
        let mut e = self.term()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            e = Expr::Bin(Box::new(e), op, Box::new(self.term()?));
        }
        Ok(e)
    }
    fn term(&mut self) -> Result<Expr, String> {
        let mut e = self.factor()?;
        while let Some(Tok::Op(op @ ('*' | '/'))) = self.peek().cloned() {
            self.pos += 1;
            e = Expr::Bin(Box::new(e), op, Box::new(self.factor()?));
        }
        Ok(e)
    }
    fn factor(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Tok::Num(v)) => Ok(Expr::Num(v)),
            Some(Tok::Word(w)) => parse_ref(&w).map(Expr::Ref),
            Some(Tok::LParen) => {
                if self.depth >= MAX_DEPTH {
                    return Err(format!("parentheses nested too deep (at most {MAX_DEPTH})"));
                }
                self.depth += 1;
                let e = self.expr()?;
                self.depth -= 1;
                match self.next() {
                    Some(Tok::RParen) => Ok(e),
                    _ => Err("missing ')'".into()),
                }
            }
            Some(t) => Err(format!("unexpected {t:?}")),
            None => Err("expression ends too early".into()),
        }
    }
}

fn parse_ref(w: &str) -> Result<StatRef, String> {
    let (label, rest) = match w.strip_prefix('@') {
        Some(r) => {
            let (l, rest) = r
                .split_once('.')
                .ok_or_else(|| format!("{w:?}: expected @LABEL.SCOPE.STAT"))?;
            (Some(l.to_string()), rest)
        }
        None => (None, w),
    };
    let (scope, name) = rest.split_once('.').ok_or_else(|| {
        format!("{w:?}: expected SCOPE.STAT, like a.zswpout or global.stored_pages")
    })?;
    if scope.is_empty() || name.is_empty() {
        return Err(format!("{w:?}: expected SCOPE.STAT"));
    }
    Ok(StatRef {
        label,
        scope: scope.to_string(),
        name: name.to_string(),
    })
}

/// Parses an arithmetic expression alone (for computed `set` values such
/// as `"= @full.a.memory.zswap.current / 2"`).
pub fn parse_expr(text: &str) -> Result<Expr, String> {
    let toks = tokenize(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    if p.pos < p.toks.len() {
        return Err(format!(
            "unexpected {:?} after the expression",
            p.toks[p.pos]
        ));
    }
    Ok(e)
}

/// `s` quoted for a message, cut after 60 characters when it is long.
pub fn quote_short(s: &str) -> String {
    if s.len() <= 80 {
        return format!("{s:?}");
    }
    let head: String = s.chars().take(60).collect();
    format!("{head:?}... ({} bytes)", s.len())
}

/// Every counter reference of an expression, for validation.
pub fn expr_refs(e: &Expr) -> Vec<&StatRef> {
    fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a StatRef>) {
        match e {
            Expr::Num(_) => {}
            Expr::Ref(r) => out.push(r),
            Expr::Bin(a, _, b) => {
                walk(a, out);
                walk(b, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(e, &mut out);
    out
}

/// Evaluates an expression against `now` and the labelled snapshots.
pub fn eval_expr(
    e: &Expr,
    now: &Snapshot,
    labelled: &HashMap<String, Snapshot>,
) -> Result<f64, String> {
    eval(e, now, labelled)
}

impl Expectation {
    /// Parses one expectation.
    pub fn parse(text: &str) -> Result<Expectation, String> {
        let toks = tokenize(text)?;
        let mut p = Parser {
            toks,
            pos: 0,
            depth: 0,
        };
        let lhs = p.expr()?;
        let cmp = match p.next() {
            Some(Tok::Cmp(c)) => c,
            _ => return Err("expected a comparison (== != < <= > >=) after the left side".into()),
        };
        let rhs = p.expr()?;
        if p.pos < p.toks.len() {
            return Err(format!(
                "unexpected {:?} after the expectation",
                p.toks[p.pos]
            ));
        }
        Ok(Expectation {
            text: text.to_string(),
            lhs,
            cmp,
            rhs,
        })
    }

    /// Every counter reference, for validation.
    pub fn refs(&self) -> Vec<&StatRef> {
        let mut out = expr_refs(&self.lhs);
        out.extend(expr_refs(&self.rhs));
        out
    }

    /// Evaluates against `now` and the labelled snapshots. An unknown
    /// counter is an error (a scenario mistake, not a failed expectation).
    pub fn check(
        &self,
        now: &Snapshot,
        labelled: &HashMap<String, Snapshot>,
    ) -> Result<Checked, String> {
        let lhs = eval(&self.lhs, now, labelled)?;
        let rhs = eval(&self.rhs, now, labelled)?;
        let eps = 1e-9 * lhs.abs().max(rhs.abs()).max(1.0);
        let ok = match self.cmp {
            Cmp::Eq => (lhs - rhs).abs() <= eps,
            Cmp::Ne => (lhs - rhs).abs() > eps,
            Cmp::Lt => lhs < rhs,
            Cmp::Le => lhs <= rhs + eps,
            Cmp::Gt => lhs > rhs,
            Cmp::Ge => lhs + eps >= rhs,
        };
        Ok(Checked {
            expect: self.text.clone(),
            ok,
            lhs,
            rhs,
        })
    }
}

fn eval(e: &Expr, now: &Snapshot, labelled: &HashMap<String, Snapshot>) -> Result<f64, String> {
    Ok(match e {
        Expr::Num(v) => *v,
        Expr::Ref(r) => {
            let snap = match &r.label {
                None => now,
                Some(l) => labelled.get(l).ok_or_else(|| {
                    format!("no snapshot labelled {l:?} was taken before this step")
                })?,
            };
            snap.get(&r.scope, &r.name)
                .ok_or_else(|| {
                    if r.scope != "global" && !snap.cgroups.contains_key(&r.scope) {
                        format!(
                            "unknown cgroup {:?} (known: global, {})",
                            r.scope,
                            snap.cgroups.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    } else {
                        let known = if r.scope == "global" {
                            &snap.global
                        } else {
                            &snap.cgroups[&r.scope]
                        };
                        format!(
                            "unknown counter {}.{} (known: {})",
                            r.scope,
                            r.name,
                            known.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    }
                })?
                .as_f64()
        }
        Expr::Bin(a, op, b) => {
            let (x, y) = (eval(a, now, labelled)?, eval(b, now, labelled)?);
            match op {
                '+' => x + y,
                '-' => x - y,
                '*' => x * y,
                _ => {
                    if y == 0.0 {
                        return Err("division by zero".into());
                    }
                    x / y
                }
            }
        }
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::stats::Num;

    fn snap(v: u64) -> Snapshot {
        let mut s = Snapshot::default();
        s.global.insert("stored_pages".into(), Num::Int(v));
        let mut a = crate::stats::StatMap::new();
        a.insert("zswpwb".into(), Num::Int(v / 2));
        a.insert("memory.swap.peak".into(), Num::Int(v * 4096));
        s.cgroups.insert("a/b".into(), a);
        s
    }

    #[test]
    fn parses_and_checks() {
        let now = snap(100);
        let mut lab = HashMap::new();
        lab.insert("after-alloc".to_string(), snap(40));
        let t = |s: &str| Expectation::parse(s).unwrap().check(&now, &lab).unwrap().ok;
        assert!(t("global.stored_pages >= 100"));
        assert!(!t("global.stored_pages > 100"));
        assert!(t("a/b.zswpwb == 50"));
        assert!(t("a/b.zswpwb != @after-alloc.a/b.zswpwb"));
        assert!(t("@after-alloc.a/b.zswpwb * 2 - 10 == 30"));
        assert!(t("a/b.memory.swap.peak >= 400K - 4096 * (2 + 3)"));
        assert!(t("global.stored_pages / 4 == 25"));
        assert!(t("(1 + 2) * 3 == 9"));
    }

    #[test]
    fn depth_and_length_are_bounded() {
        let nest = |n: usize| format!("{}1{} > 0", "(".repeat(n), ")".repeat(n));
        assert!(Expectation::parse(&nest(MAX_DEPTH)).is_ok());
        let e = Expectation::parse(&nest(MAX_DEPTH + 1)).unwrap_err();
        assert!(e.contains("nested too deep"), "{e}");
        let chain = |n: usize| vec!["1"; n].join("+");
        assert!(parse_expr(&chain(MAX_OPERANDS)).is_ok());
        let e = parse_expr(&chain(MAX_OPERANDS + 1)).unwrap_err();
        assert!(e.contains("too many terms"), "{e}");
        // Counted over both sides of a comparison.
        let e = Expectation::parse(&format!("{} == 1", chain(MAX_OPERANDS))).unwrap_err();
        assert!(e.contains("too many terms"), "{e}");
        let e = parse_expr(&nest(10_000)).unwrap_err();
        assert!(e.contains("too long"), "{e}");
        let e = parse_expr(&"1 + ".repeat(20_000)).unwrap_err();
        assert!(e.contains("too long"), "{e}");
        // The deepest tree the limits allow evaluates (and drops).
        let e = parse_expr(&chain(MAX_OPERANDS)).unwrap();
        let v = eval_expr(&e, &Snapshot::default(), &HashMap::new()).unwrap();
        assert_eq!(v, MAX_OPERANDS as f64);
        assert_eq!(
            quote_short(&"x".repeat(100)).len(),
            62 + " (100 bytes)".len() + 3
        );
    }

    /// Found by the `expr` fuzz target on the parser before its limits: the
    /// input `*` (the empty text nested 42 * 256 parentheses deep)
    /// overflowed the recursive parser's stack.
    #[test]
    fn fuzz_found_deep_empty_parentheses() {
        let text = format!("{}{}", "(".repeat(42 * 256), ")".repeat(42 * 256));
        assert!(parse_expr(&text).unwrap_err().contains("too long"));
        assert!(Expectation::parse(&format!("{text} > 0")).is_err());
        // Short enough to be read, too deep to be parsed.
        let text = format!("{}{}", "(".repeat(2000), ")".repeat(2000));
        assert!(parse_expr(&text).unwrap_err().contains("nested too deep"));
    }

    #[test]
    fn errors_are_reported() {
        assert!(Expectation::parse("a.zswpout").is_err());
        assert!(Expectation::parse("a.zswpout >").is_err());
        assert!(Expectation::parse("a.zswpout => 1").is_err());
        assert!(Expectation::parse("zswpout > 1").is_err());
        assert!(Expectation::parse("(1 > 2").is_err());
        let e = Expectation::parse("a.nosuch > 1").unwrap();
        let mut s = snap(1);
        s.cgroups.insert("a".into(), Default::default());
        assert!(
            e.check(&s, &HashMap::new())
                .unwrap_err()
                .contains("unknown counter")
        );
        let e = Expectation::parse("@nolabel.a.x > 1").unwrap();
        assert!(e.check(&s, &HashMap::new()).is_err());
    }
}
