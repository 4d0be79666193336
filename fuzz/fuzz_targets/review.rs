//! Fuzz target `review`: an AdmissionReview body through the whole review path.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::targets::review(data));
