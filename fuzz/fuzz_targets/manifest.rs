//! Fuzz target `manifest`: a manifest through the reader of `vigil check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::targets::manifest(data));
