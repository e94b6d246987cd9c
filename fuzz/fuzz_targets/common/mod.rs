//! Shared by the lz4 targets (`lz4_block`, `lz4_enc`): pages built from the
//! input by a little program, so they have matches of many offsets and
//! lengths, as real memory has.

use kbase::PAGE_SIZE;

/// A page from a little program: pairs (op, arg) push a literal, repeat
/// the last byte `run_len(arg)` times, or copy `copy_len(arg)` bytes from
/// up to 256 bytes back; the rest of the page repeats what was built (or
/// is zero if nothing was). Each target picks its own lengths.
pub fn page_from(
    prog: &[u8],
    run_len: impl Fn(u8) -> usize,
    copy_len: impl Fn(u8) -> usize,
) -> Vec<u8> {
    // Room for the last run or copy past the page's end (up to 511 bytes
    // with the lengths the targets pick).
    let mut p: Vec<u8> = Vec::with_capacity(PAGE_SIZE + 600);
    let mut it = prog.chunks_exact(2);
    while p.len() < PAGE_SIZE {
        let Some(&[op, arg]) = it.next() else { break };
        match op % 4 {
            0 | 3 => p.push(arg),
            1 => {
                let b = p.last().copied().unwrap_or(arg);
                p.extend(std::iter::repeat_n(b, run_len(arg)));
            }
            _ => {
                let back = usize::from(op >> 2) * 4 + 1;
                if back <= p.len() {
                    for _ in 0..copy_len(arg) {
                        p.push(p[p.len() - back]);
                    }
                } else {
                    p.push(arg);
                }
            }
        }
    }
    repeat_to_page(p)
}

/// `p` cut or repeated to one page (zeros if empty).
pub fn repeat_to_page(mut p: Vec<u8>) -> Vec<u8> {
    let built = p.len();
    for i in built..PAGE_SIZE {
        let b = if built == 0 { 0 } else { p[i % built] };
        p.push(b);
    }
    p.truncate(PAGE_SIZE);
    p
}
