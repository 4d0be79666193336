//! Fuzz target `policy`: a policy document through the policy parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigil_fuzz::targets::policy(data));
