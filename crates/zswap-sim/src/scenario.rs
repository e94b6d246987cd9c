//! Scenario files (TOML): the simulated machine, zswap's settings, the
//! cgroups, and the steps the simulated programs take.
//!
//! ```toml
//! [machine]            # all optional: ram, swap sizes ("64M"), swap_file, cpus, seed
//! ram = "64M"
//! swap = "256M"
//! [zswap]              # enabled, compressor (lz4|zstd), max_pool_percent,
//! compressor = "lz4"   # accept_threshold_percent, shrinker_enabled, skip_if_exists
//! [[cgroup]]           # name is a path ("a/b"); memory_max, zswap_max, zswap_writeback
//! name = "a"
//! memory_max = "8M"
//! [[step]]             # exactly one action per step
//! cgroup = "a"
//! alloc = "32M"
//! region = "r1"
//! fill = "touch"
//! label = "after-alloc"
//! expect = ["a.zswpout > 0"]
//! expect_result = "EAGAIN"
//! ```

//!
//! Actions beyond the basic ones: `create_cgroup = "a/b"` (with optional
//! `set = { ... }` settings), `shrink = true` with `cgroup = "a"` runs
//! zswap's `shrink_memcg` on that cgroup (one entry per node) instead of the global
//! worker. A cgroup value in a `set` may be computed from the counters, in
//! bytes: `set = { zswap_max = "= @stored.a.memory.zswap.current / 2" }`.
//! `swapoff = true` swaps the device off (Linux's `try_to_unuse`: every
//! swapped-out page is faulted back in and verified; then zswap's trees and
//! the device go).
//! The `[zswap]` table also takes `skip_if_exists = false` (what
//! `--no-skip-if-exists` does).
//!
//! Every mistake is reported with the file, the line and the reason
//! ([`ScenarioError`]), and the run exits with code 2.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use kbase::Error;
use serde::Deserialize;
use toml::Spanned;

use crate::expect::{Expectation, quote_short};
use crate::fill::Fill;
use crate::size::{bytes_to_pages, parse_bytes, parse_limit};

/// The embedded default scenario (`zswap-sim run` without a file).
pub const DEFAULT_SCENARIO: &str = include_str!("default.toml");

/// A scenario mistake: where and why.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioError {
    /// The scenario file (`<default>` for the embedded one).
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub col: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.col, self.reason
            )
        } else {
            write!(f, "{}: {}", self.file, self.reason)
        }
    }
}

impl std::error::Error for ScenarioError {}

/// The simulated machine.
#[derive(Clone, Debug)]
pub struct Machine {
    /// RAM in pages.
    pub ram_pages: u64,
    /// Swap device size in pages.
    pub swap_pages: u64,
    /// Keep the swap device in `swap.0` in this existing folder instead of
    /// memory.
    pub swap_file: Option<PathBuf>,
    /// Simulated CPUs (per-CPU compression contexts).
    pub cpus: usize,
    /// Seed of every generated page.
    pub seed: u64,
    /// Where `ram`, `swap` and `swap_file` are written, as 1-based
    /// (line, column); (0, 0) for a default.
    pub at: MachinePositions,
}

/// Where the `[machine]` values are written, for errors found at boot.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachinePositions {
    /// `ram =`.
    pub ram: (usize, usize),
    /// `swap =`.
    pub swap: (usize, usize),
    /// `swap_file =`.
    pub swap_file: (usize, usize),
}

/// zswap's settings at boot (unset ones keep zswap-core's defaults).
#[derive(Clone, Debug, Default)]
pub struct ZswapSettings {
    /// `(name, value)` pairs for zswap's runtime parameters, in file order.
    pub params: Vec<(String, String, usize)>,
    /// Writeback passes `skip_if_exists = true` (the default and Linux's
    /// behaviour); false shows the recursion deadlock.
    pub skip_if_exists: bool,
}

/// A cgroup created at boot.
#[derive(Clone, Debug)]
pub struct CgroupSpec {
    /// Path (`a/b`).
    pub path: String,
    /// Settings as `(memcg file key, value, line)`.
    pub settings: Vec<(String, String, usize)>,
    /// Line of the `[[cgroup]]` table.
    pub line: usize,
}

/// What a step does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Map a new region of `pages` pages in `cgroup` and fill every page.
    Alloc {
        /// Owning cgroup.
        cgroup: String,
        /// Region name.
        region: String,
        /// Number of pages.
        pages: u64,
        /// Content.
        fill: Fill,
    },
    /// Touch and verify every page of a region.
    Read {
        /// Region name.
        region: String,
    },
    /// Rewrite every page of a region (new version), optionally with a new fill.
    Write {
        /// Region name.
        region: String,
        /// New fill, if given.
        fill: Option<Fill>,
    },
    /// Unmap a region.
    Free {
        /// Region name.
        region: String,
    },
    /// Write `bytes` to the cgroup's memory.reclaim.
    Reclaim {
        /// Target cgroup.
        cgroup: String,
        /// Bytes to reclaim.
        bytes: u64,
    },
    /// Change cgroup files (when `cgroup` is set) or zswap parameters.
    Set {
        /// Target cgroup, or None for zswap's parameters.
        cgroup: Option<String>,
        /// `(key, value, line)`.
        values: Vec<(String, String, usize)>,
    },
    /// Create a cgroup (`create_cgroup = "a/b"`), with optional settings in
    /// `set`.
    CreateCgroup {
        /// Path.
        path: String,
        /// Settings as for `[[cgroup]]`.
        settings: Vec<(String, String, usize)>,
    },
    /// Remove (rmdir) a cgroup; its programs move to the parent.
    RemoveCgroup {
        /// Path.
        path: String,
    },
    /// Run zswap's global shrink worker, or with a cgroup, zswap's
    /// `shrink_memcg` on that cgroup (one entry examined per node).
    Shrink {
        /// The cgroup, or None for the global worker.
        cgroup: Option<String>,
    },
    /// `swapoff`: `try_to_unuse` faults every swapped-out page back into
    /// its owner (each one verified), zswap frees its empty trees, the
    /// swap device goes. Later swap-outs find no device.
    Swapoff,
}

impl Action {
    /// A short description for reports.
    pub fn describe(&self) -> String {
        match self {
            Action::Alloc {
                cgroup,
                region,
                pages,
                fill,
            } => {
                format!(
                    "alloc {region} = {} in {cgroup} ({})",
                    crate::size::human(pages * 4096),
                    fill.name()
                )
            }
            Action::Read { region } => format!("read {region}"),
            Action::Write { region, .. } => format!("write {region}"),
            Action::Free { region } => format!("free {region}"),
            Action::Reclaim { cgroup, bytes } => {
                format!("{cgroup}/memory.reclaim <- {}", crate::size::human(*bytes))
            }
            Action::Set { cgroup, values } => {
                let kv: Vec<String> = values
                    .iter()
                    .map(|(k, v, _)| {
                        if v.starts_with('=') {
                            format!("{k} {v}")
                        } else {
                            format!("{k}={v}")
                        }
                    })
                    .collect();
                match cgroup {
                    Some(c) => format!("set {c}: {}", kv.join(" ")),
                    None => format!("set zswap: {}", kv.join(" ")),
                }
            }
            Action::CreateCgroup { path, .. } => format!("mkdir {path}"),
            Action::RemoveCgroup { path } => format!("rmdir {path}"),
            Action::Shrink { cgroup: None } => "run the global shrink worker".into(),
            Action::Shrink { cgroup: Some(c) } => format!("zswap shrink_memcg({c})"),
            Action::Swapoff => "swapoff (try_to_unuse, then zswap_swapoff)".into(),
        }
    }

    /// Pages this step touches, for the progress bar.
    pub fn work(&self, region_pages: &BTreeMap<String, u64>) -> u64 {
        match self {
            Action::Alloc { pages, .. } => *pages,
            Action::Read { region } | Action::Write { region, .. } => {
                region_pages.get(region).copied().unwrap_or(0)
            }
            Action::Reclaim { bytes, .. } => bytes_to_pages(*bytes),
            _ => 1,
        }
    }
}

/// One step.
#[derive(Clone, Debug)]
pub struct Step {
    /// 0-based index.
    pub index: usize,
    /// Line of the `[[step]]` table.
    pub line: usize,
    /// The action.
    pub action: Action,
    /// Snapshot label.
    pub label: Option<String>,
    /// Expectations with their lines.
    pub expect: Vec<(Expectation, usize)>,
    /// The step's expected result: None = ok.
    pub expect_result: Option<Error>,
}

/// A parsed, validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// File name for messages (`<default>` for the embedded scenario).
    pub file: String,
    /// Source text (for line numbers of run-time errors).
    pub source: String,
    /// `name =` at the top, or the file stem.
    pub name: String,
    /// `description =` at the top.
    pub description: Option<String>,
    /// The machine.
    pub machine: Machine,
    /// zswap settings.
    pub zswap: ZswapSettings,
    /// Cgroups created at boot, parents first.
    pub cgroups: Vec<CgroupSpec>,
    /// Steps.
    pub steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    description: Option<String>,
    machine: Option<Spanned<RawMachine>>,
    zswap: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    #[serde(default)]
    cgroup: Vec<Spanned<RawCgroup>>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    ram: Option<Spanned<toml::Value>>,
    swap: Option<Spanned<toml::Value>>,
    swap_file: Option<Spanned<String>>,
    cpus: Option<Spanned<i64>>,
    seed: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCgroup {
    name: Spanned<String>,
    memory_max: Option<Spanned<toml::Value>>,
    zswap_max: Option<Spanned<toml::Value>>,
    zswap_writeback: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    cgroup: Option<Spanned<String>>,
    alloc: Option<Spanned<toml::Value>>,
    region: Option<Spanned<String>>,
    fill: Option<Spanned<String>>,
    read: Option<Spanned<String>>,
    write: Option<Spanned<String>>,
    free: Option<Spanned<String>>,
    reclaim: Option<Spanned<toml::Value>>,
    set: Option<Spanned<BTreeMap<String, Spanned<toml::Value>>>>,
    create_cgroup: Option<Spanned<String>>,
    remove_cgroup: Option<Spanned<String>>,
    shrink: Option<Spanned<bool>>,
    swapoff: Option<Spanned<bool>>,
    label: Option<Spanned<String>>,
    #[serde(default)]
    expect: Vec<Spanned<String>>,
    expect_result: Option<Spanned<String>>,
}

/// Knobs a `[[cgroup]]` table or a cgroup `set` may change, with the memcg
/// file each maps to.
pub const CGROUP_KEYS: &[(&str, &str)] = &[
    ("memory_max", "memory.max"),
    ("zswap_max", "memory.zswap.max"),
    ("zswap_writeback", "memory.zswap.writeback"),
];

/// zswap's runtime parameters (Linux's module parameter names).
pub const ZSWAP_PARAMS: &[&str] = &[
    "enabled",
    "compressor",
    "max_pool_percent",
    "accept_threshold_percent",
    "shrinker_enabled",
];

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, reason: impl Into<String>) -> ScenarioError {
        let (line, col) = line_col(self.src, span.start);
        ScenarioError {
            file: self.file.to_string(),
            line,
            col,
            reason: reason.into(),
        }
    }
    fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.src, span.start).0
    }
}

/// 1-based line and column of byte `offset` in `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

/// A size or limit value: a string ("8M", "max") or an integer (bytes).
fn value_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(if *b { "1".into() } else { "0".into() }),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

fn size_value(cx: &Ctx, v: &Spanned<toml::Value>, what: &str) -> Result<u64, ScenarioError> {
    let text = match v.get_ref() {
        toml::Value::Integer(i) if *i < 0 => {
            return Err(cx.err(v.span(), format!("{what}: a size cannot be negative")));
        }
        other => value_text(other),
    }
    .ok_or_else(|| cx.err(v.span(), format!("{what}: expected a size like \"64M\"")))?;
    parse_bytes(&text).map_err(|e| cx.err(v.span(), format!("{what}: {e}")))
}

/// What a computed value or an expectation may read: the labels of earlier
/// steps (and the step's own, for expectations), the cgroups that exist
/// when it is evaluated, and every cgroup that ever existed (for `@LABEL.`
/// references to a snapshot taken before a cgroup was removed).
struct Visible<'a> {
    labels: &'a HashSet<String>,
    own_label: Option<&'a str>,
    known: &'a HashSet<String>,
    ever_known: &'a HashSet<String>,
}

impl Visible<'_> {
    fn check(&self, refs: &[&crate::expect::StatRef]) -> Result<(), String> {
        for r in refs {
            if let Some(l) = &r.label
                && !self.labels.contains(l)
                && self.own_label != Some(l.as_str())
            {
                return Err(format!("no earlier step is labelled {l:?}"));
            }
            let exists = if r.label.is_some() {
                self.ever_known.contains(&r.scope)
            } else {
                self.known.contains(&r.scope)
            };
            if r.scope != "global" && r.scope != "root" && !exists {
                return Err(format!("unknown cgroup {:?}", r.scope));
            }
        }
        Ok(())
    }
}

/// Checks and normalises a cgroup setting; returns (memcg file, value).
/// A computed value (`"= EXPR"`) is kept as written, after checking that
/// it parses and reads only what `vis` allows; it is evaluated in bytes
/// right before the setting is applied (at boot for `[[cgroup]]`, when its
/// step runs for `set` and `create_cgroup`).
fn cgroup_setting(
    cx: &Ctx,
    key: &str,
    v: &Spanned<toml::Value>,
    vis: &Visible,
    when: &str,
) -> Result<(String, String), ScenarioError> {
    let text = value_text(v.get_ref()).ok_or_else(|| {
        cx.err(
            v.span(),
            format!("{key}: expected a string, number or boolean"),
        )
    })?;
    if let Some(expr) = text.strip_prefix('=') {
        // A computed value: "= @label.a.memory.zswap.current / 2" (bytes).
        let file = CGROUP_KEYS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, f)| *f)
            .ok_or_else(|| cx.err(v.span(), format!("unknown cgroup setting {key:?} (expected memory_max, zswap_max or zswap_writeback)")))?;
        let e = crate::expect::parse_expr(expr)
            .map_err(|e| cx.err(v.span(), format!("{key} = {}: {e}", quote_short(&text))))?;
        vis.check(&crate::expect::expr_refs(&e)).map_err(|e| {
            cx.err(
                v.span(),
                format!("{key} = {} (computed {when}): {e}", quote_short(&text)),
            )
        })?;
        return Ok((file.to_string(), text));
    }
    match key {
        "memory_max" | "zswap_max" => {
            if let toml::Value::Integer(i) = v.get_ref()
                && *i < 0
            {
                return Err(cx.err(v.span(), format!("{key}: cannot be negative")));
            }
            let lim = parse_limit(&text).map_err(|e| cx.err(v.span(), format!("{key}: {e}")))?;
            let file = CGROUP_KEYS
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(key, |(_, f)| f);
            Ok((
                file.to_string(),
                lim.map_or("max".into(), |b| b.to_string()),
            ))
        }
        "zswap_writeback" => {
            let b = match text.as_str() {
                "1" | "true" => "1",
                "0" | "false" => "0",
                _ => return Err(cx.err(v.span(), "zswap_writeback: expected true/false or 1/0")),
            };
            Ok(("memory.zswap.writeback".into(), b.into()))
        }
        _ => Err(cx.err(
            v.span(),
            format!(
                "unknown cgroup setting {key:?} (expected memory_max, zswap_max or zswap_writeback)"
            ),
        )),
    }
}

fn zswap_param(cx: &Ctx, key: &str, v: &Spanned<toml::Value>) -> Result<String, ScenarioError> {
    let text = value_text(v.get_ref()).ok_or_else(|| {
        cx.err(
            v.span(),
            format!("{key}: expected a string, number or boolean"),
        )
    })?;
    if text.starts_with('=') && ZSWAP_PARAMS.contains(&key) {
        return Err(cx.err(
            v.span(),
            format!("{key} = {}: zswap parameters take plain values; computed values (\"= ...\") are for cgroup settings (memory_max, zswap_max, zswap_writeback)", quote_short(&text)),
        ));
    }
    match key {
        "enabled" | "shrinker_enabled" => match text.as_str() {
            "1" | "true" | "Y" | "y" => Ok("Y".into()),
            "0" | "false" | "N" | "n" => Ok("N".into()),
            _ => Err(cx.err(v.span(), format!("{key}: expected true or false"))),
        },
        "compressor" => match text.as_str() {
            "lz4" | "zstd" => Ok(text),
            _ => Err(cx.err(
                v.span(),
                format!(
                    "compressor: unknown {} (expected lz4 or zstd)",
                    quote_short(&text)
                ),
            )),
        },
        // Plain unsigned ints, as Linux takes them (150 is accepted).
        "max_pool_percent" | "accept_threshold_percent" => match text.parse::<u32>() {
            Ok(p) => Ok(p.to_string()),
            _ => Err(cx.err(
                v.span(),
                format!("{key}: expected an unsigned integer percentage"),
            )),
        },
        _ => Err(cx.err(
            v.span(),
            format!(
                "unknown zswap parameter {key:?} (expected one of {})",
                ZSWAP_PARAMS.join(", ")
            ),
        )),
    }
}

fn check_cgroup_path(cx: &Ctx, s: &Spanned<String>) -> Result<String, ScenarioError> {
    let p = s.get_ref().trim_matches('/');
    let ok = !p.is_empty()
        && p.split('/').all(|c| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        })
        && p != "global"
        && p != "root";
    if !ok {
        return Err(cx.err(
            s.span(),
            format!("bad cgroup path {:?}: use names of letters, digits, '_' and '-' joined by '/' (not global or root)", s.get_ref()),
        ));
    }
    Ok(p.to_string())
}

impl Scenario {
    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let bytes = crate::host::read_regular_file(path, crate::host::SCENARIO_MAX_BYTES).map_err(
            |reason| ScenarioError {
                file: file.clone(),
                line: 0,
                col: 0,
                reason,
            },
        )?;
        let base = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let stem = path
            .file_stem()
            .map_or_else(|| file.clone(), |s| s.to_string_lossy().into_owned());
        Scenario::from_bytes(&bytes, &file, &base, &stem)
    }

    /// Parses a scenario file's bytes: UTF-8 text (an error points at the
    /// first byte that is not), then [`Scenario::parse`].
    pub fn from_bytes(
        bytes: &[u8],
        file: &str,
        base: &Path,
        default_name: &str,
    ) -> Result<Scenario, ScenarioError> {
        let src = std::str::from_utf8(bytes).map_err(|e| {
            // Point at the first byte that is not UTF-8 (its line holds
            // valid text up to there).
            let good = e.valid_up_to();
            let prefix = std::str::from_utf8(&bytes[..good]).unwrap_or("");
            let (line, col) = line_col(prefix, good);
            ScenarioError {
                file: file.to_string(),
                line,
                col,
                reason: format!(
                    "not UTF-8 text: byte 0x{:02x} at offset {good}",
                    bytes.get(good).copied().unwrap_or(0)
                ),
            }
        })?;
        Scenario::parse(src, file, base, default_name)
    }

    /// The embedded default scenario.
    pub fn default_scenario() -> Result<Scenario, ScenarioError> {
        Scenario::parse(DEFAULT_SCENARIO, "<default>", Path::new("."), "default")
    }

    /// Parses scenario text. `base` resolves relative `pages:` paths.
    pub fn parse(
        src: &str,
        file: &str,
        base: &Path,
        default_name: &str,
    ) -> Result<Scenario, ScenarioError> {
        let cx = Ctx { file, src };
        let raw: RawScenario = toml::from_str(src).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, col) = if e.span().is_some() {
                line_col(src, span.start)
            } else {
                (0, 0)
            };
            ScenarioError {
                file: file.to_string(),
                line,
                col,
                reason: e.message().trim().to_string(),
            }
        })?;

        // [machine]
        let mut machine = Machine {
            ram_pages: bytes_to_pages(64 << 20),
            swap_pages: bytes_to_pages(256 << 20),
            swap_file: None,
            cpus: 2,
            seed: 1,
            at: MachinePositions::default(),
        };
        if let Some(m) = &raw.machine {
            let m = m.get_ref();
            if let Some(v) = &m.ram {
                let b = size_value(&cx, v, "ram")?;
                if !((1 << 20)..=(64u64 << 30)).contains(&b) {
                    return Err(cx.err(v.span(), "ram: must be between 1M and 64G"));
                }
                machine.ram_pages = bytes_to_pages(b);
                machine.at.ram = line_col(src, v.span().start);
            }
            if let Some(v) = &m.swap {
                let b = size_value(&cx, v, "swap")?;
                if !(4096..=(1u64 << 40)).contains(&b) {
                    return Err(cx.err(v.span(), "swap: must be between 4K and 1T"));
                }
                machine.swap_pages = bytes_to_pages(b);
                machine.at.swap = line_col(src, v.span().start);
            }
            if let Some(f) = &m.swap_file {
                machine.at.swap_file = line_col(src, f.span().start);
                if f.get_ref().is_empty() {
                    return Err(cx.err(
                        f.span(),
                        "swap_file: empty (name the folder that holds the swap device's file)",
                    ));
                }
                let p = Path::new(f.get_ref());
                machine.swap_file = Some(if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base.join(p)
                });
            }
            if let Some(c) = &m.cpus {
                if !(1..=256).contains(c.get_ref()) {
                    return Err(cx.err(c.span(), "cpus: must be 1..=256"));
                }
                machine.cpus = *c.get_ref() as usize;
            }
            if let Some(s) = &m.seed {
                machine.seed = *s.get_ref() as u64;
            }
        }

        // [zswap]
        let mut zswap = ZswapSettings {
            params: Vec::new(),
            skip_if_exists: true,
        };
        if let Some(z) = &raw.zswap {
            for (k, v) in z.get_ref() {
                if k == "skip_if_exists" {
                    match v.get_ref() {
                        toml::Value::Boolean(b) => zswap.skip_if_exists = *b,
                        _ => return Err(cx.err(v.span(), "skip_if_exists: expected true or false")),
                    }
                    continue;
                }
                let val = zswap_param(&cx, k, v)?;
                zswap.params.push((k.clone(), val, cx.line(&v.span())));
            }
        }

        // [[cgroup]]
        let mut cgroups: Vec<CgroupSpec> = Vec::new();
        let mut known: HashSet<String> = HashSet::new();
        for c in &raw.cgroup {
            let line = cx.line(&c.span());
            let c = c.get_ref();
            let path = check_cgroup_path(&cx, &c.name)?;
            if !known.insert(path.clone()) {
                return Err(cx.err(c.name.span(), format!("cgroup {path:?} declared twice")));
            }
            if let Some((parent, _)) = path.rsplit_once('/')
                && !known.contains(parent)
            {
                return Err(cx.err(
                    c.name.span(),
                    format!("cgroup {path:?}: its parent {parent:?} must be declared first"),
                ));
            }
            // Computed values read the machine as booted so far: the
            // cgroups declared before this one.
            let mut before = known.clone();
            before.remove(&path);
            let no_labels = HashSet::new();
            let mut settings = Vec::new();
            for (key, v) in [
                ("memory_max", &c.memory_max),
                ("zswap_max", &c.zswap_max),
                ("zswap_writeback", &c.zswap_writeback),
            ] {
                if let Some(v) = v {
                    let vis = Visible {
                        labels: &no_labels,
                        own_label: None,
                        known: &before,
                        ever_known: &before,
                    };
                    let (f, val) = cgroup_setting(&cx, key, v, &vis, "at boot, before any step")?;
                    settings.push((f, val, cx.line(&v.span())));
                }
            }
            cgroups.push(CgroupSpec {
                path,
                settings,
                line,
            });
        }

        // [[step]]
        let mut ever_known = known.clone();
        let mut steps = Vec::new();
        let mut labels: HashSet<String> = HashSet::new();
        let mut regions: HashSet<String> = HashSet::new();
        for (index, s) in raw.step.iter().enumerate() {
            let span = s.span();
            let line = cx.line(&span);
            let s = s.get_ref();
            let mut actions: Vec<&str> = Vec::new();
            for (name, present) in [
                ("alloc", s.alloc.is_some()),
                ("read", s.read.is_some()),
                ("write", s.write.is_some()),
                ("free", s.free.is_some()),
                ("reclaim", s.reclaim.is_some()),
                ("create_cgroup", s.create_cgroup.is_some()),
                ("remove_cgroup", s.remove_cgroup.is_some()),
                ("shrink", s.shrink.as_ref().is_some_and(|b| *b.get_ref())),
                ("swapoff", s.swapoff.as_ref().is_some_and(|b| *b.get_ref())),
            ] {
                if present {
                    actions.push(name);
                }
            }
            // `set` is an action of its own, or the settings of create_cgroup.
            if s.set.is_some() && s.create_cgroup.is_none() {
                actions.push("set");
            }
            if actions.len() != 1 {
                return Err(cx.err(
                    span,
                    if actions.is_empty() {
                        "step has no action (expected one of alloc, read, write, free, reclaim, set, create_cgroup, remove_cgroup, shrink = true, swapoff = true)".to_string()
                    } else {
                        format!("step has several actions ({}); give exactly one per step", actions.join(", "))
                    },
                ));
            }
            let cgroup = match &s.cgroup {
                Some(c) => {
                    let p = check_cgroup_path(&cx, c)?;
                    if !known.contains(&p) {
                        return Err(cx.err(
                            c.span(),
                            format!(
                                "unknown cgroup {p:?} (declare it with [[cgroup]] or create_cgroup)"
                            ),
                        ));
                    }
                    Some(p)
                }
                None => None,
            };
            let need_cgroup = |what: &str| -> Result<String, ScenarioError> {
                cgroup
                    .clone()
                    .ok_or_else(|| cx.err(span.clone(), format!("{what} needs `cgroup = \"...\"`")))
            };
            let need_region =
                |r: &Spanned<String>, regions: &HashSet<String>| -> Result<String, ScenarioError> {
                    if regions.contains(r.get_ref()) {
                        Ok(r.get_ref().clone())
                    } else {
                        Err(cx.err(
                            r.span(),
                            format!(
                                "unknown region {:?} (not allocated by an earlier step, or freed)",
                                r.get_ref()
                            ),
                        ))
                    }
                };
            let fill_of = |f: &Spanned<String>| {
                Fill::parse(f.get_ref(), base).map_err(|e| cx.err(f.span(), e))
            };
            let action = match actions[0] {
                "alloc" => {
                    let Some(a) = &s.alloc else { unreachable!() };
                    let bytes = size_value(&cx, a, "alloc")?;
                    if bytes == 0 || bytes > (16u64 << 30) {
                        return Err(cx.err(a.span(), "alloc: size must be between 4K and 16G"));
                    }
                    let region = s
                        .region
                        .as_ref()
                        .ok_or_else(|| cx.err(span.clone(), "alloc needs `region = \"NAME\"`"))?;
                    if !regions.insert(region.get_ref().clone()) {
                        return Err(cx.err(
                            region.span(),
                            format!("region {:?} already exists", region.get_ref()),
                        ));
                    }
                    let fill = match &s.fill {
                        Some(f) => fill_of(f)?,
                        None => Fill::Touch,
                    };
                    Action::Alloc {
                        cgroup: need_cgroup("alloc")?,
                        region: region.get_ref().clone(),
                        pages: bytes_to_pages(bytes),
                        fill,
                    }
                }
                "read" => Action::Read {
                    region: need_region(
                        s.read.as_ref().unwrap_or_else(|| unreachable!()),
                        &regions,
                    )?,
                },
                "write" => Action::Write {
                    region: need_region(
                        s.write.as_ref().unwrap_or_else(|| unreachable!()),
                        &regions,
                    )?,
                    fill: s.fill.as_ref().map(fill_of).transpose()?,
                },
                "free" => {
                    let r = s.free.as_ref().unwrap_or_else(|| unreachable!());
                    let name = need_region(r, &regions)?;
                    regions.remove(&name);
                    Action::Free { region: name }
                }
                "reclaim" => Action::Reclaim {
                    cgroup: need_cgroup("reclaim")?,
                    bytes: size_value(
                        &cx,
                        s.reclaim.as_ref().unwrap_or_else(|| unreachable!()),
                        "reclaim",
                    )?,
                },
                "set" => {
                    let set = s.set.as_ref().unwrap_or_else(|| unreachable!());
                    let mut values = Vec::new();
                    for (k, v) in set.get_ref() {
                        let l = cx.line(&v.span());
                        if cgroup.is_some() {
                            let vis = Visible {
                                labels: &labels,
                                own_label: None,
                                known: &known,
                                ever_known: &ever_known,
                            };
                            let (f, val) = cgroup_setting(&cx, k, v, &vis, "when the step runs")?;
                            values.push((f, val, l));
                        } else {
                            values.push((k.clone(), zswap_param(&cx, k, v)?, l));
                        }
                    }
                    Action::Set {
                        cgroup: cgroup.clone(),
                        values,
                    }
                }
                "create_cgroup" => {
                    let c = s.create_cgroup.as_ref().unwrap_or_else(|| unreachable!());
                    let path = check_cgroup_path(&cx, c)?;
                    if let Some((parent, _)) = path.rsplit_once('/')
                        && !known.contains(parent)
                    {
                        return Err(cx.err(
                            c.span(),
                            format!("create_cgroup {path:?}: unknown parent {parent:?}"),
                        ));
                    }
                    if known.contains(&path) {
                        return Err(cx.err(c.span(), format!("cgroup {path:?} already exists")));
                    }
                    // Computed settings are evaluated right before the
                    // cgroup is made: they read the cgroups that exist then.
                    let mut settings = Vec::new();
                    if let Some(set) = &s.set {
                        for (k, v) in set.get_ref() {
                            let vis = Visible {
                                labels: &labels,
                                own_label: None,
                                known: &known,
                                ever_known: &ever_known,
                            };
                            let (f, val) = cgroup_setting(
                                &cx,
                                k,
                                v,
                                &vis,
                                "when the step runs, before the cgroup is made",
                            )?;
                            settings.push((f, val, cx.line(&v.span())));
                        }
                    }
                    known.insert(path.clone());
                    ever_known.insert(path.clone());
                    Action::CreateCgroup { path, settings }
                }
                "remove_cgroup" => {
                    let c = s.remove_cgroup.as_ref().unwrap_or_else(|| unreachable!());
                    let path = check_cgroup_path(&cx, c)?;
                    if !known.remove(&path) {
                        return Err(
                            cx.err(c.span(), format!("remove_cgroup: unknown cgroup {path:?}"))
                        );
                    }
                    Action::RemoveCgroup { path }
                }
                "swapoff" => Action::Swapoff,
                _ => Action::Shrink {
                    cgroup: cgroup.clone(),
                },
            };
            if !matches!(action, Action::Alloc { .. } | Action::Write { .. })
                && let Some(f) = &s.fill
            {
                return Err(cx.err(f.span(), "fill only applies to alloc and write steps"));
            }
            if !matches!(action, Action::Alloc { .. })
                && let Some(r) = &s.region
            {
                return Err(cx.err(r.span(), "region names the region an alloc step creates; other steps name it directly (read = \"r1\")"));
            }
            let label = match &s.label {
                Some(l) => {
                    let t = l.get_ref();
                    if t.is_empty() || t.contains('.') || t.contains(char::is_whitespace) {
                        return Err(
                            cx.err(l.span(), "label: must be non-empty, without '.' or spaces")
                        );
                    }
                    if labels.contains(t) {
                        return Err(cx.err(l.span(), format!("label {t:?} used twice")));
                    }
                    Some(t.clone())
                }
                None => None,
            };
            let mut expect = Vec::new();
            for e in &s.expect {
                let parsed = Expectation::parse(e.get_ref()).map_err(|r| {
                    cx.err(
                        e.span(),
                        format!("expectation {}: {r}", quote_short(e.get_ref())),
                    )
                })?;
                let vis = Visible {
                    labels: &labels,
                    own_label: label.as_deref(),
                    known: &known,
                    ever_known: &ever_known,
                };
                vis.check(&parsed.refs()).map_err(|r| {
                    cx.err(
                        e.span(),
                        format!("expectation {}: {r}", quote_short(e.get_ref())),
                    )
                })?;
                expect.push((parsed, cx.line(&e.span())));
            }
            if let Some(l) = &label {
                labels.insert(l.clone());
            }
            let expect_result = match &s.expect_result {
                None => None,
                Some(r) if r.get_ref() == "ok" => None,
                Some(r) => Some(Error::from_name(r.get_ref()).ok_or_else(|| {
                    cx.err(r.span(), format!("expect_result: unknown {:?} (expected ok or an errno name like EAGAIN, ENOMEM)", r.get_ref()))
                })?),
            };
            steps.push(Step {
                index,
                line,
                action,
                label,
                expect,
                expect_result,
            });
        }

        Ok(Scenario {
            file: file.to_string(),
            source: src.to_string(),
            name: raw.name.unwrap_or_else(|| default_name.to_string()),
            description: raw.description,
            machine,
            zswap,
            cgroups,
            steps,
        })
    }

    /// Builds an error at a (line, column) of [`MachinePositions`]; the file
    /// alone for (0, 0).
    pub fn error_at_pos(&self, at: (usize, usize), reason: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.clone(),
            line: at.0,
            col: at.1,
            reason: reason.into(),
        }
    }

    /// Builds an error pointing at `line` of this scenario (at its first
    /// character that is not a blank).
    pub fn error_at(&self, line: usize, reason: impl Into<String>) -> ScenarioError {
        let col = match self.line_text(line) {
            Some(t) => t.chars().take_while(|c| c.is_whitespace()).count() + 1,
            None => 0,
        };
        ScenarioError {
            file: self.file.clone(),
            line: if col > 0 { line } else { 0 },
            col,
            reason: reason.into(),
        }
    }

    /// Builds an error pointing at the value `text` on `line` (at its
    /// opening quote), or at the line when `text` is not found there.
    pub fn error_at_value(
        &self,
        line: usize,
        text: &str,
        reason: impl Into<String>,
    ) -> ScenarioError {
        let mut e = self.error_at(line, reason);
        if let Some(t) = self.line_text(line)
            && !text.is_empty()
            && let Some(at) = t.find(text)
        {
            let mut col = t[..at].chars().count() + 1;
            if t[..at].ends_with(['"', '\'']) {
                col -= 1;
            }
            e.col = col;
        }
        e
    }

    /// The text of 1-based `line` of the source.
    fn line_text(&self, line: usize) -> Option<&str> {
        if line == 0 {
            return None;
        }
        self.source.lines().nth(line - 1)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(s, "t.toml", Path::new("."), "t")
    }

    #[test]
    fn default_scenario_parses() {
        let s = Scenario::default_scenario().unwrap();
        assert!(!s.steps.is_empty());
        assert!(s.cgroups.len() >= 2);
    }

    #[test]
    fn full_example() {
        let s = parse(
            r#"
[machine]
ram = "64M"
swap = "256M"
[zswap]
compressor = "lz4"
[[cgroup]]
name = "a"
memory_max = "8M"
[[step]]
cgroup = "a"
alloc = "32M"
region = "r1"
fill = "touch"
label = "after-alloc"
expect = ["a.zswpout > 0", "global.stored_pages >= 100", "a.zswpwb == @after-alloc.a.zswpwb"]
[[step]]
cgroup = "a"
reclaim = "4M"
expect_result = "EAGAIN"
"#,
        )
        .unwrap();
        assert_eq!(s.machine.ram_pages, 16384);
        assert_eq!(s.steps.len(), 2);
        assert!(matches!(
            s.steps[0].action,
            Action::Alloc { pages: 8192, .. }
        ));
        assert_eq!(s.steps[0].expect.len(), 3);
        assert_eq!(s.steps[1].expect_result, Some(Error::EAGAIN));
        assert_eq!(s.cgroups[0].settings[0].0, "memory.max");
        assert_eq!(s.cgroups[0].settings[0].1, (8u64 << 20).to_string());
    }

    #[test]
    fn errors_carry_line_and_reason() {
        let e = parse("[machine]\nram = \"64Q\"\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("unknown suffix"), "{e}");
        let e = parse("[machine]\nbogus = 1\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse("[[step]]\nread = \"r\"\n").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.reason.contains("unknown region"));
        let e = parse("[[cgroup]]\nname = \"a\"\n[[step]]\ncgroup = \"a\"\nalloc = \"1M\"\nregion = \"r\"\nread = \"r\"\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.reason.contains("several actions"));
        let e = parse("[[step]]\nshrink = true\nexpect = [\"a.zswpout >\"]\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse("[[step]]\nshrink = true\nexpect = [\"@x.global.a > 1\"]\n").unwrap_err();
        assert!(e.reason.contains("labelled"), "{e}");
        let e = parse("[[cgroup]]\nname = \"a/b\"\n").unwrap_err();
        assert!(e.reason.contains("parent"), "{e}");
        let e = parse("[zswap]\ncompressor = \"lzo\"\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("[[step]]\nshrink = true\nexpect_result = \"EWHAT\"\n").unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse("[machine\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn computed_values_are_checked_where_they_stand() {
        // Kept as written, evaluated when applied.
        let s = parse("[[cgroup]]\nname = \"a\"\nzswap_max = \"= 4096 * 2\"\n").unwrap();
        assert_eq!(s.cgroups[0].settings[0].1, "= 4096 * 2");
        // A [[cgroup]] value is computed at boot: no labels, only the
        // cgroups declared before it.
        let e = parse("[[cgroup]]\nname = \"a\"\nmemory_max = \"= a.memory.max\"\n").unwrap_err();
        assert_eq!((e.line, e.col), (3, 14), "{e}");
        assert!(e.reason.contains("computed at boot") && e.reason.contains("unknown cgroup"));
        // create_cgroup's settings: earlier labels, existing cgroups.
        let e = parse(
            "[[step]]\ncreate_cgroup = \"b\"\nset = { memory_max = \"= @nope.root.memory.max\" }\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.reason.contains("labelled \"nope\""), "{e}");
        let s = parse("[[step]]\nshrink = true\nlabel = \"l\"\n[[step]]\ncreate_cgroup = \"b\"\nset = { memory_max = \"= @l.root.memory.current + 8M\" }\n")
            .unwrap();
        assert!(
            matches!(&s.steps[1].action, Action::CreateCgroup { settings, .. } if settings[0].1.starts_with('='))
        );
        // zswap parameters take plain values only.
        let e = parse("[zswap]\nmax_pool_percent = \"= 20\"\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("plain values"), "{e}");
    }

    #[test]
    fn load_refuses_what_is_not_a_regular_utf8_file() {
        let e = Scenario::load(Path::new("/dev/zero")).unwrap_err();
        assert_eq!((e.line, e.col), (0, 0));
        assert!(e.reason.contains("character device"), "{e}");
        let p = std::env::temp_dir().join(format!("zswap-sim-utf8-{}.toml", std::process::id()));
        std::fs::write(&p, b"name = \"ok\"\n[machine]\nram = \"\xff\"\n").unwrap();
        let e = Scenario::load(&p).unwrap_err();
        assert_eq!((e.line, e.col), (3, 8), "{e}");
        assert!(
            e.reason.contains("not UTF-8") && e.reason.contains("0xff"),
            "{e}"
        );
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn mangled_scenarios_never_panic() {
        // Byte-level mutations of the default scenario: every result is a
        // scenario or an error with a position, never a panic.
        let base = DEFAULT_SCENARIO.as_bytes();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let junk = b"=[]\"\n#.-0123456789xMK@{},";
        for _ in 0..400 {
            let mut v = base.to_vec();
            for _ in 0..(1 + next() % 4) {
                let at = (next() % v.len() as u64) as usize;
                match next() % 3 {
                    0 => {
                        v.remove(at);
                    }
                    1 => v.insert(at, junk[(next() % junk.len() as u64) as usize]),
                    _ => v[at] = junk[(next() % junk.len() as u64) as usize],
                }
            }
            let text = String::from_utf8_lossy(&v);
            if let Err(e) = Scenario::parse(&text, "m.toml", Path::new("."), "m") {
                assert!(!e.reason.is_empty());
            }
        }
    }
}
