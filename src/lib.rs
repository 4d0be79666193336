//! Vigil: a Kubernetes validating admission webhook that catches workloads slipping past security monitoring.
#![forbid(unsafe_code)]

pub mod admission;
pub mod alert;
pub mod audit;
pub mod cli;
pub mod connect;
pub mod engine;
pub mod image;
mod json;
pub mod manifest;
pub mod policy;
pub mod registry;
pub mod reload;
pub mod report;
pub mod rules;
pub mod server;
pub mod signature;
pub mod workload;
