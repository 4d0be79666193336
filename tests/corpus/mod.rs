//! Where the upstream test corpora live, for the tests that read them. They are never committed.
//!
//! The corpora are `VIGIL_CORPORA` when set, else `../shared/corpora` beside the project's root. A test that
//! needs one and cannot find it writes `SKIPPED <test>: <why>` straight to the terminal (past cargo's output
//! capture, so that it shows even when the test passes) and returns early. With `VIGIL_REQUIRE_CORPORA=1`,
//! which `.ci/run` sets, a missing corpus fails the test instead.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The path of `rel` inside the corpora, or `None` (after saying so by `test`'s name) when it is missing.
pub fn corpus(test: &str, rel: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("VIGIL_CORPORA") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora"),
    };
    let path = root.join(rel);
    if path.exists() {
        return Some(path);
    }
    let why = format!(
        "{test}: the corpus {rel} is not at {}; point VIGIL_CORPORA at a copy of the shared corpora \
         (CONTRIBUTING.md, \"Test data\")",
        path.display()
    );
    if std::env::var_os("VIGIL_REQUIRE_CORPORA").is_some_and(|v| v == "1") {
        panic!("{why} (VIGIL_REQUIRE_CORPORA=1 makes this a failure)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {why}");
    None
}

/// The AdmissionReviews of a directory (its `.json` files but the index), sorted.
#[allow(dead_code)] // not every test that reads a corpus reads reviews
pub fn review_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("INDEX.json"))
        .collect();
    files.sort();
    files
}

/// Every AdmissionReview of the corpus `admissionreview/` (`real/` and `derived/`), or `None` when missing.
#[allow(dead_code)]
pub fn captured_reviews(test: &str) -> Option<Vec<PathBuf>> {
    let root = corpus(test, "admissionreview")?;
    let mut files = review_files(&root.join("real"));
    files.extend(review_files(&root.join("derived")));
    assert_eq!(
        files.len(),
        20,
        "12 upstream captures, 6 recordings of ours and 2 derived reviews"
    );
    Some(files)
}
