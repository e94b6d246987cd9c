//! Page contents: generated, never stored.
//!
//! The simulator never keeps a copy of what a page should contain. A page's
//! content is a pure function of `(fill, seed, region id, page index,
//! version)`: the version goes up each time the simulated process rewrites
//! the page. Verification regenerates the expected bytes and compares them
//! with what came back from zswap or the swap device.
//!
//! Fills (the `fill =` key of an `alloc` step):
//!
//! | fill | content | what zswap does with it |
//! |---|---|---|
//! | `zero` | all zero | the swap core's zeromap: no zswap, no I/O |
//! | `touch` | one non-zero byte per page, rest zero (like the selftests' `'a'` per page) | compresses ~100x |
//! | `same:0xNN` | every byte `NN` | compressed by zswap like any page (`0x00`: zeromap) |
//! | `seq-half` | first half 0,1,2,..., second half zero (test_zswap_writeback's page) | compresses ~8x |
//! | `random` | random bytes | incompressible: stored raw, or rejected with writeback off |
//! | `random-half` | first half random, second half zero | compresses ~2:1 (bulky pool objects) |
//! | `pages:PATH` | 4 KiB pages of a page file, cycled | real data |
//! | `mix` | the built-in realistic mix, see [`mix_page`] | overall lz4 ratio around 3 |

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use kbase::PAGE_SIZE;

/// How a region's pages are filled.
#[derive(Clone, Debug)]
pub enum Fill {
    /// All zero.
    Zero,
    /// One non-zero byte per page at a page-dependent offset, the rest zero.
    Touch,
    /// Every byte the same value.
    Same(u8),
    /// First half 0,1,2,... (wrapping), second half zero.
    SeqHalf,
    /// Random, incompressible bytes.
    Random,
    /// First half random, second half zero (~2:1).
    RandomHalf,
    /// Pages of a page file, cycled.
    Pages(Arc<PageFile>),
    /// The built-in realistic mix.
    Mix,
}

/// A page file loaded into memory (shared by every region that uses it).
#[derive(Debug)]
pub struct PageFile {
    /// Where it came from (for the report).
    pub path: PathBuf,
    data: Vec<u8>,
}

impl PageFile {
    /// Number of whole pages in the file.
    pub fn nr_pages(&self) -> usize {
        self.data.len() / PAGE_SIZE
    }

    /// Reads a page file (a regular file of at most
    /// [`PAGE_FILE_MAX_BYTES`](crate::host::PAGE_FILE_MAX_BYTES)), without
    /// the cache of [`load_page_file`].
    pub fn load(path: &Path) -> Result<PageFile, String> {
        let data = crate::host::read_regular_file(path, crate::host::PAGE_FILE_MAX_BYTES)
            .map_err(|e| format!("page file {}: {e}", path.display()))?;
        PageFile::from_bytes(path, data)
    }

    /// A page file from its bytes: whole 4 KiB pages, a trailing partial
    /// page ignored; at least one page.
    pub fn from_bytes(path: &Path, data: Vec<u8>) -> Result<PageFile, String> {
        if data.len() < PAGE_SIZE {
            return Err(format!(
                "page file {} holds no whole 4 KiB page ({} bytes)",
                path.display(),
                data.len()
            ));
        }
        Ok(PageFile {
            path: path.to_path_buf(),
            data,
        })
    }

    fn page(&self, n: usize) -> &[u8] {
        let start = (n % self.nr_pages()) * PAGE_SIZE;
        &self.data[start..start + PAGE_SIZE]
    }
}

/// Loads (once per process, then shared) a page file. Errors are strings for
/// the scenario error report.
pub fn load_page_file(path: &Path) -> Result<Arc<PageFile>, String> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<PageFile>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if let Some(f) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(f.clone());
    }
    let f = Arc::new(PageFile::load(path)?);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, f.clone());
    Ok(f)
}

impl Fill {
    /// Parses a `fill =` value. `base` is the scenario file's folder, against
    /// which a relative `pages:PATH` is resolved.
    pub fn parse(s: &str, base: &Path) -> Result<Fill, String> {
        Ok(match s {
            "zero" => Fill::Zero,
            "touch" => Fill::Touch,
            "seq-half" => Fill::SeqHalf,
            "random" => Fill::Random,
            "random-half" => Fill::RandomHalf,
            "mix" => Fill::Mix,
            _ => {
                if let Some(v) = s.strip_prefix("same:") {
                    let hex = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X"));
                    let parsed = match hex {
                        Some(h) => u8::from_str_radix(h, 16),
                        None => v.parse::<u8>(),
                    };
                    Fill::Same(parsed.map_err(|_| {
                        format!("bad byte in fill {s:?}: expected same:0xNN (00 to ff)")
                    })?)
                } else if let Some(p) = s.strip_prefix("pages:") {
                    if p.is_empty() {
                        return Err("fill pages: needs a path (pages:PATH)".into());
                    }
                    let path = Path::new(p);
                    let full = if path.is_absolute() {
                        path.to_path_buf()
                    } else {
                        base.join(path)
                    };
                    Fill::Pages(load_page_file(&full)?)
                } else {
                    return Err(format!(
                        "unknown fill {s:?} (expected zero, touch, same:0xNN, seq-half, random, random-half, pages:PATH or mix)"
                    ));
                }
            }
        })
    }

    /// The fill's name as written in a scenario.
    pub fn name(&self) -> String {
        match self {
            Fill::Zero => "zero".into(),
            Fill::Touch => "touch".into(),
            Fill::Same(b) => format!("same:0x{b:02x}"),
            Fill::SeqHalf => "seq-half".into(),
            Fill::Random => "random".into(),
            Fill::RandomHalf => "random-half".into(),
            Fill::Pages(f) => format!("pages:{}", f.path.display()),
            Fill::Mix => "mix".into(),
        }
    }

    /// Writes the content of page `index` of region `region` at `version`
    /// into `out`. Deterministic: the same arguments give the same bytes.
    pub fn generate(
        &self,
        seed: u64,
        region: u32,
        index: u64,
        version: u32,
        out: &mut [u8; PAGE_SIZE],
    ) {
        let key = page_key(seed, region, index, version);
        match self {
            Fill::Zero => out.fill(0),
            Fill::Touch => {
                out.fill(0);
                // One byte, like the selftests' 'a', but at a page-dependent
                // place and value so a page swapped with another is caught.
                let off = (key % PAGE_SIZE as u64) as usize;
                out[off] = 1 + (key >> 32) as u8 % 255;
            }
            Fill::Same(b) => out.fill(*b),
            Fill::SeqHalf => seq_half(out),
            Fill::Random => random_fill(key, out),
            Fill::RandomHalf => {
                random_fill(key, out);
                out[PAGE_SIZE / 2..].fill(0);
            }
            Fill::Pages(f) => {
                // Cycle through the file; a rewrite (version) moves to another page.
                let n = index
                    .wrapping_add((version as u64).wrapping_mul(7919))
                    .wrapping_add(region as u64 * 104_729);
                out.copy_from_slice(f.page((n % f.nr_pages() as u64) as usize));
            }
            Fill::Mix => mix_page(key, out),
        }
    }

    /// Does page `index` at `version` hold the expected bytes?
    pub fn verify(
        &self,
        seed: u64,
        region: u32,
        index: u64,
        version: u32,
        page: &[u8; PAGE_SIZE],
    ) -> bool {
        let mut want = [0u8; PAGE_SIZE];
        self.generate(seed, region, index, version, &mut want);
        want == *page
    }
}

/// A 64-bit key per (seed, region, page, version): splitmix64 over the tuple.
fn page_key(seed: u64, region: u32, index: u64, version: u32) -> u64 {
    let mut h = splitmix(seed ^ 0x9e37_79b9_7f4a_7c15);
    h = splitmix(h ^ region as u64);
    h = splitmix(h ^ index);
    splitmix(h ^ ((version as u64) << 32 | 0x5151))
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small fast PRNG (xorshift64*), enough for incompressible bytes.
struct Rng(u64);
impl Rng {
    fn new(key: u64) -> Rng {
        Rng(splitmix(key) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seq_half(out: &mut [u8; PAGE_SIZE]) {
    let (a, b) = out.split_at_mut(PAGE_SIZE / 2);
    for (i, x) in a.iter_mut().enumerate() {
        *x = i as u8;
    }
    b.fill(0);
}

fn random_fill(key: u64, out: &mut [u8; PAGE_SIZE]) {
    let mut r = Rng::new(key);
    for w in out.chunks_exact_mut(8) {
        w.copy_from_slice(&r.next().to_le_bytes());
    }
}

const WORDS: &[&str] = &[
    "the", "page", "memory", "swap", "kernel", "return", "struct", "static", "const", "value",
    "error", "index", "buffer", "length", "count", "object", "function", "string", "config",
    "request", "response", "handler", "thread", "mutex", "vector", "result", "option", "module",
    "import", "export", "default", "public", "private", "session", "user", "name", "data", "file",
];

/// The built-in realistic mix of anonymous memory, one kind per page chosen
/// by the page key (shares loosely follow the corpus of real programs):
///
/// - 6% zero pages (the zeromap), 3% other same-value pages (compressed);
/// - 30% text: words and punctuation, as in string heaps (lz4 ~3x);
/// - 30% heap objects: pointers into a few regions, small integers, lengths,
///   padding (lz4 ~3-4x);
/// - 16% sparse: mostly zero with a few scattered words (lz4 ~10x+);
/// - 15% random: encrypted or compressed data (incompressible, stored raw).
pub fn mix_page(key: u64, out: &mut [u8; PAGE_SIZE]) {
    let kind = key % 100;
    let mut r = Rng::new(key);
    match kind {
        0..=5 => out.fill(0),
        6..=8 => out.fill((r.next() | 1) as u8),
        9..=38 => {
            let mut pos = 0;
            while pos < PAGE_SIZE {
                let w = WORDS[r.below(WORDS.len() as u64) as usize].as_bytes();
                let sep: &[u8] = match r.below(12) {
                    0 => b". ",
                    1 => b", ",
                    2 => b"\n",
                    3 => b"_",
                    _ => b" ",
                };
                for &b in w.iter().chain(sep) {
                    if pos < PAGE_SIZE {
                        out[pos] = b;
                        pos += 1;
                    }
                }
                // Sprinkle digits, like ids and counters in text.
                if r.below(8) == 0 && pos + 4 < PAGE_SIZE {
                    let n = r.below(10_000);
                    for d in format!("{n}").bytes() {
                        out[pos] = d;
                        pos += 1;
                    }
                }
            }
        }
        39..=68 => {
            // 64-byte objects: header, 3 pointers, 2 small ints, a length, padding.
            let bases = [
                0x0000_5555_5555_0000u64,
                0x0000_7f3a_1c00_0000,
                0x0000_7ffd_e000_0000,
            ];
            for obj in out.chunks_exact_mut(64) {
                let mut words = [0u64; 8];
                words[0] = 0x0000_0001_0000_0000 | r.below(64);
                for w in &mut words[1..4] {
                    *w = bases[r.below(3) as usize] + (r.below(1 << 16) << 4);
                }
                words[4] = r.below(256);
                words[5] = r.below(4);
                words[6] = r.below(1 << 12);
                for (dst, w) in obj.chunks_exact_mut(8).zip(words) {
                    dst.copy_from_slice(&w.to_le_bytes());
                }
            }
        }
        69..=84 => {
            out.fill(0);
            for _ in 0..(4 + r.below(28)) {
                let off = (r.below((PAGE_SIZE / 8) as u64) * 8) as usize;
                out[off..off + 8].copy_from_slice(&r.next().to_le_bytes());
            }
        }
        _ => random_fill(key, out),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn page(f: &Fill, idx: u64, ver: u32) -> [u8; PAGE_SIZE] {
        let mut p = [0u8; PAGE_SIZE];
        f.generate(7, 1, idx, ver, &mut p);
        p
    }

    #[test]
    fn fills_are_deterministic_and_distinct() {
        for f in [Fill::Touch, Fill::Random, Fill::Mix] {
            assert_eq!(page(&f, 3, 0), page(&f, 3, 0), "{}", f.name());
            assert!(f.verify(7, 1, 3, 0, &page(&f, 3, 0)));
            assert_ne!(
                page(&f, 3, 0),
                page(&f, 3, 1),
                "{}: a rewrite changes the page",
                f.name()
            );
        }
        assert_ne!(page(&Fill::Touch, 3, 0), page(&Fill::Touch, 4, 0));
        let t = page(&Fill::Touch, 9, 0);
        assert_eq!(t.iter().filter(|&&b| b != 0).count(), 1);
        let s = page(&Fill::SeqHalf, 0, 0);
        assert_eq!(s[5], 5);
        assert_eq!(s[300], 44);
        assert!(s[PAGE_SIZE / 2..].iter().all(|&b| b == 0));
        assert!(page(&Fill::Same(0xab), 0, 0).iter().all(|&b| b == 0xab));
    }

    #[test]
    fn parse_names() {
        let base = Path::new(".");
        assert!(matches!(
            Fill::parse("same:0x5a", base),
            Ok(Fill::Same(0x5a))
        ));
        assert!(Fill::parse("same:0x5g", base).is_err());
        assert!(Fill::parse("bogus", base).is_err());
        assert!(Fill::parse("pages:/nonexistent/file.bin", base).is_err());
    }

    #[test]
    fn mix_has_every_kind() {
        let mut zero = 0;
        let mut same = 0;
        for i in 0..1000 {
            let p = page(&Fill::Mix, i, 0);
            match kbase::is_same_filled(&p) {
                Some(0) => zero += 1,
                Some(_) => same += 1,
                None => {}
            }
        }
        assert!((30..100).contains(&zero), "zero pages {zero}");
        assert!((10..60).contains(&same), "same-filled pages {same}");
    }
}
