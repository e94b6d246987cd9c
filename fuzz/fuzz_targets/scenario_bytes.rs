//! Scenario files as arbitrary bytes, through the same path as
//! `zswap-sim run FILE` after reading: every input is a scenario or an
//! error with a reason, and an error's position is inside the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use zswap_sim::Scenario;

fuzz_target!(|data: &[u8]| {
    // Relative `pages:` paths resolve under a folder that does not exist.
    let base = Path::new("/nonexistent/zswap-fuzz");
    match Scenario::from_bytes(data, "fuzz.toml", base, "fuzz") {
        Ok(s) => assert!(s.steps.len() <= data.len()),
        Err(e) => {
            assert!(!e.reason.is_empty(), "an error without a reason");
            let lines = data.split(|&b| b == b'\n').count();
            assert!(e.line <= lines, "line {} of {lines}: {e}", e.line);
            assert_eq!(e.line == 0, e.col == 0, "line and column go together: {e}");
        }
    }
});
