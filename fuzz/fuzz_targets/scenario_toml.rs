//! Structure-aware scenarios: well-formed TOML built from the scenario
//! language's own keys and values (and some arbitrary ones), so the fuzzer
//! spends its time past the TOML syntax, in the checks of the scenario
//! itself. The text is always valid TOML, so every error must name a line:
//! none may be reported for the file alone.
#![no_main]

use std::fmt::Write;
use std::path::Path;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use zswap_sim::Scenario;

/// A word of the scenario language, or any string.
#[derive(Arbitrary, Debug)]
enum Word {
    Known(u8),
    Any(String),
}

const WORDS: &[&str] = &[
    "a",
    "a/b",
    "b",
    "a/b/c",
    "root",
    "global",
    "r1",
    "r2",
    "l",
    "after",
    "4K",
    "64K",
    "1M",
    "8M",
    "16M",
    "64M",
    "1G",
    "max",
    "0",
    "1",
    "true",
    "false",
    "lz4",
    "zstd",
    "lzo",
    "touch",
    "zero",
    "mix",
    "random",
    "random-half",
    "seq-half",
    "same:0x5a",
    "same:0xzz",
    "pages:",
    "pages:x.bin",
    "ok",
    "EAGAIN",
    "ENOMEM",
    "EINVAL",
    "Y",
    "N",
    "",
];

impl Word {
    fn text(&self) -> String {
        match self {
            Word::Known(i) => WORDS[*i as usize % WORDS.len()].to_string(),
            Word::Any(s) => s.clone(),
        }
    }
}

/// One token of an expression (rendered with spaces between tokens).
#[derive(Arbitrary, Debug)]
enum Tok {
    Num(u32),
    Size(u16, u8),
    Ref(Option<Word>, Word, u8),
    Op(u8),
    Cmp(u8),
    Open,
    Close,
    Word(Word),
}

const STATS: &[&str] = &[
    "zswpout",
    "zswpin",
    "zswpwb",
    "memory.current",
    "memory.max",
    "memory.zswap.current",
    "memory.zswap.max",
    "memory.zswap.writeback",
    "stored_pages",
    "pool_pages",
    "compression_ratio",
    "nosuch",
];

fn expr(toks: &[Tok]) -> String {
    let mut s = String::new();
    for t in toks {
        if !s.is_empty() {
            s.push(' ');
        }
        match t {
            Tok::Num(n) => write!(s, "{n}").unwrap(),
            Tok::Size(n, u) => {
                write!(s, "{n}{}", ["", "K", "M", "G", "T", "Q"][*u as usize % 6]).unwrap()
            }
            Tok::Ref(label, scope, stat) => {
                if let Some(l) = label {
                    write!(s, "@{}.", l.text()).unwrap();
                }
                write!(
                    s,
                    "{}.{}",
                    scope.text(),
                    STATS[*stat as usize % STATS.len()]
                )
                .unwrap();
            }
            Tok::Op(o) => s.push(['+', '-', '*', '/'][*o as usize % 4]),
            Tok::Cmp(c) => s.push_str(["==", "!=", "<", "<=", ">", ">="][*c as usize % 6]),
            Tok::Open => s.push('('),
            Tok::Close => s.push(')'),
            Tok::Word(w) => s.push_str(&w.text()),
        }
    }
    s
}

/// A TOML value.
#[derive(Arbitrary, Debug)]
enum Val {
    Str(Word),
    Int(i64),
    Bool(bool),
    Float(f64),
    Computed(Vec<Tok>),
    Array(Vec<Word>),
}

fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => write!(q, "\\u{:04x}", c as u32).unwrap(),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

impl Val {
    fn toml(&self) -> String {
        match self {
            Val::Str(w) => quote(&w.text()),
            Val::Int(i) => i.to_string(),
            Val::Bool(b) => b.to_string(),
            Val::Float(f) if f.is_finite() => format!("{f:?}"),
            Val::Float(f) if f.is_nan() => "nan".into(),
            Val::Float(f) => if *f > 0.0 { "inf" } else { "-inf" }.into(),
            Val::Computed(t) => quote(&format!("= {}", expr(t))),
            Val::Array(ws) => {
                let items: Vec<String> = ws.iter().map(|w| quote(&w.text())).collect();
                format!("[{}]", items.join(", "))
            }
        }
    }
}

/// A key: one the table knows, or any.
#[derive(Arbitrary, Debug)]
enum Key {
    Known(u8),
    Any(String),
}

fn key(k: &Key, known: &[&str]) -> String {
    match k {
        Key::Known(i) => known[*i as usize % known.len()].to_string(),
        Key::Any(s) => quote(s),
    }
}

const MACHINE: &[&str] = &["ram", "swap", "cpus", "seed", "swap_file"];
const ZSWAP: &[&str] = &[
    "enabled",
    "compressor",
    "max_pool_percent",
    "accept_threshold_percent",
    "shrinker_enabled",
    "skip_if_exists",
];
const CGROUP: &[&str] = &["name", "memory_max", "zswap_max", "zswap_writeback"];
const STEP: &[&str] = &[
    "cgroup",
    "alloc",
    "region",
    "fill",
    "read",
    "write",
    "free",
    "reclaim",
    "create_cgroup",
    "remove_cgroup",
    "shrink",
    "label",
    "expect_result",
];

#[derive(Arbitrary, Debug)]
struct Step {
    values: Vec<(Key, Val)>,
    set: Option<Vec<(Key, Val)>>,
    expect: Vec<Vec<Tok>>,
}

#[derive(Arbitrary, Debug)]
struct Doc {
    name: Option<Word>,
    machine: Option<Vec<(Key, Val)>>,
    zswap: Option<Vec<(Key, Val)>>,
    cgroups: Vec<Vec<(Key, Val)>>,
    steps: Vec<Step>,
}

/// Writes `key = value` lines, each key once (TOML refuses duplicates).
fn table(out: &mut String, kvs: &[(Key, Val)], known: &[&str]) {
    let mut seen = std::collections::HashSet::new();
    for (k, v) in kvs {
        let k = key(k, known);
        if seen.insert(k.clone()) {
            writeln!(out, "{k} = {}", v.toml()).unwrap();
        }
    }
}

impl Doc {
    fn render(&self) -> String {
        let mut s = String::new();
        if let Some(n) = &self.name {
            writeln!(s, "name = {}", quote(&n.text())).unwrap();
        }
        if let Some(m) = &self.machine {
            s.push_str("[machine]\n");
            table(&mut s, m, MACHINE);
        }
        if let Some(z) = &self.zswap {
            s.push_str("[zswap]\n");
            table(&mut s, z, ZSWAP);
        }
        for c in &self.cgroups {
            s.push_str("[[cgroup]]\n");
            table(&mut s, c, CGROUP);
        }
        for st in &self.steps {
            s.push_str("[[step]]\n");
            let mut kvs: Vec<(String, String)> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for (k, v) in &st.values {
                let k = key(k, STEP);
                if k != "set" && k != "expect" && seen.insert(k.clone()) {
                    kvs.push((k, v.toml()));
                }
            }
            for (k, v) in kvs {
                writeln!(s, "{k} = {v}").unwrap();
            }
            if let Some(set) = &st.set {
                let mut seen = std::collections::HashSet::new();
                let items: Vec<String> = set
                    .iter()
                    .map(|(k, v)| {
                        (
                            key(
                                k,
                                &[
                                    "memory_max",
                                    "zswap_max",
                                    "zswap_writeback",
                                    "enabled",
                                    "compressor",
                                    "max_pool_percent",
                                ],
                            ),
                            v,
                        )
                    })
                    .filter(|(k, _)| seen.insert(k.clone()))
                    .map(|(k, v)| format!("{k} = {}", v.toml()))
                    .collect();
                writeln!(s, "set = {{ {} }}", items.join(", ")).unwrap();
            }
            if !st.expect.is_empty() {
                let items: Vec<String> = st.expect.iter().map(|t| quote(&expr(t))).collect();
                writeln!(s, "expect = [{}]", items.join(", ")).unwrap();
            }
        }
        s
    }
}

fuzz_target!(|doc: Doc| {
    let text = doc.render();
    let base = Path::new("/nonexistent/zswap-fuzz");
    match Scenario::parse(&text, "fuzz.toml", base, "fuzz") {
        Ok(_) => {}
        Err(e) => {
            assert!(!e.reason.is_empty(), "an error without a reason");
            let lines = text.lines().count();
            assert!(e.line <= lines.max(1), "line {} of {lines}: {e}", e.line);
            // Valid TOML: every mistake is in some value or table.
            let valid_toml = text.parse::<toml::Table>().is_ok();
            if valid_toml {
                assert!(
                    e.line > 0,
                    "no line for an error in valid TOML: {e}\n{text}"
                );
            }
        }
    }
});
