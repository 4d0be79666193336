//! Runs the engine's one entry point for reviews, `admission::review`, on one AdmissionReview N times, for
//! `bench/instructions.sh` (which counts the instructions one review takes under callgrind) and profilers.
//!
//! `cargo run --release --example review_loop -- POLICY REVIEW N`; prints the mean wall time per review.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use time::OffsetDateTime;
use vigil::admission::{self, ConfigMapRef, Endpoint};
use vigil::policy::Policy;

// The same allocator as the `vigil` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [policy, review, n] = args.as_slice() else {
        eprintln!("usage: review_loop POLICY REVIEW N");
        return ExitCode::from(2);
    };
    let policy = match std::fs::read_to_string(policy)
        .map_err(|e| e.to_string())
        .and_then(|text| Policy::parse(&text, policy).map_err(|e| e.to_string()))
    {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("review_loop: {e}");
            return ExitCode::from(2);
        }
    };
    let body = match std::fs::read(review) {
        Ok(body) => body,
        Err(e) => {
            eprintln!("review_loop: {review}: {e}");
            return ExitCode::from(2);
        }
    };
    let Ok(n) = n.parse::<u32>() else {
        eprintln!("review_loop: N must be a count, not {n:?}");
        return ExitCode::from(2);
    };
    let now = OffsetDateTime::now_utc();
    let configmap = ConfigMapRef::default();
    let started = Instant::now();
    for _ in 0..n {
        match admission::review(
            &policy,
            black_box(&body),
            now,
            Endpoint::Validate,
            &configmap,
        ) {
            Ok(reviewed) => drop(black_box(reviewed)),
            Err(e) => {
                eprintln!("review_loop: {review}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let per = started.elapsed().as_secs_f64() * 1e6 / f64::from(n.max(1));
    eprintln!("{per:.2} us per review");
    ExitCode::SUCCESS
}
