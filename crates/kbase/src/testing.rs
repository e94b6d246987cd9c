//! Host test infrastructure (`std` feature), shared by the crates' tests.
//!
//! - [`watchdog`]: a test that takes locks across threads arms one; if it
//!   has not finished within its limit the whole test process is aborted
//!   with the test's name, so a deadlock or livelock fails the run instead
//!   of hanging it forever. Under Miri (virtual time, slow) it is not armed.
//! - [`corpus_test`]: every test over the real page corpus reports whether
//!   it ran or skipped (the corpus is optional); with `ZSWAP_REQUIRE_CORPUS`
//!   set in the environment a skip is a failure, which is how CI makes sure
//!   the corpus tests really ran when the corpus is present.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Disarms the watchdog when dropped (the test finished, or panicked).
#[must_use = "the watchdog is disarmed when this guard is dropped"]
#[derive(Debug)]
pub struct Watchdog {
    done: Arc<AtomicBool>,
}

/// Arms a watchdog for `what`: aborts the process if the returned guard is
/// still alive after `limit`.
pub fn watchdog(what: &'static str, limit: Duration) -> Watchdog {
    let done = Arc::new(AtomicBool::new(false));
    if !cfg!(miri) {
        let d = done.clone();
        let start = Instant::now();
        std::thread::spawn(move || {
            while !d.load(Ordering::Acquire) {
                if start.elapsed() >= limit {
                    std::eprintln!(
                        "watchdog: {what} still running after {limit:?}: aborting (a hang)"
                    );
                    std::process::abort();
                }
                std::thread::park_timeout(Duration::from_millis(50));
            }
        });
    }
    Watchdog { done }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

/// Reports the outcome of corpus test `name`: `Some(n)` it runs over `n`
/// corpus pages, `None` the corpus is absent and it skips. Prints one line
/// (`corpus test NAME: ran over N pages` / `... skipped`) and returns
/// whether the test runs. A skip panics when `ZSWAP_REQUIRE_CORPUS` is set.
pub fn corpus_test(name: &str, pages: Option<usize>) -> bool {
    match pages {
        Some(n) if n > 0 => {
            std::eprintln!("corpus test {name}: ran over {n} pages");
            true
        }
        _ => {
            std::eprintln!("corpus test {name}: skipped (no corpus beside the repository)");
            if std::env::var_os("ZSWAP_REQUIRE_CORPUS").is_some() {
                panic!("corpus test {name}: skipped, but ZSWAP_REQUIRE_CORPUS is set");
            }
            false
        }
    }
}
