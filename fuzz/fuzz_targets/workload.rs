//! Fuzz target `workload`: an object through the typed workload decoder.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::targets::workload(data));
