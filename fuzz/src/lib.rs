//! Fuzz targets for Vigil's parsers of hostile input; the bodies live in `targets.rs`, shared with the
//! regression tests of the main crate.
#![forbid(unsafe_code)]

pub mod targets;
