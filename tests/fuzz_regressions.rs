//! Replays every input the fuzzer found (`tests/data/fuzz-regressions/TARGET/`) and the fuzzer's hand-written
//! seeds (`fuzz/seeds/TARGET/`) through the fuzz targets' own bodies, so that what once failed stays fixed.
//!
//! The target bodies live in `fuzz/src/targets.rs` and are compiled into this test as a module; a failure
//! here is the same panic the fuzzer saw.

#[allow(dead_code)]
#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

/// Runs `target` on every file of the regression and seed folders of `name`; fails naming each input that
/// panics.
fn replay(name: &str, target: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = Vec::new();
    for dir in [
        root.join("tests/data/fuzz-regressions").join(name),
        root.join("fuzz/seeds").join(name),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            inputs.push(entry.unwrap().path());
        }
    }
    inputs.sort();
    assert!(!inputs.is_empty(), "{name}: no inputs");
    let mut failures = Vec::new();
    for path in &inputs {
        let data = std::fs::read(path).unwrap();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&data))) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{}: {why}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs fail:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
}

#[test]
fn review_inputs() {
    replay("review", targets::review);
}

#[test]
fn workload_inputs() {
    replay("workload", targets::workload);
}

#[test]
fn policy_inputs() {
    replay("policy", targets::policy);
}

#[test]
fn image_inputs() {
    replay("image", targets::image);
}

#[test]
fn manifest_inputs() {
    replay("manifest", targets::manifest);
}
