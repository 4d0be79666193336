//! Fuzz target `image`: an image reference and a registry pattern.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::targets::image(data));
