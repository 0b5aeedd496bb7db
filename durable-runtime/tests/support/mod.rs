//! Shared by the file store's fault tests: a file system in memory that injects faults, and
//! a workload of store calls with a snapshot of everything a store holds.

// Each test crate uses a part of this module.
#![allow(dead_code)]

pub mod mem_fs;
pub mod workload;
