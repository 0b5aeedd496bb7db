//! Deterministic simulation of the durable runtime (test support, not published).
//!
//! One seed drives everything: the workload (random programs that ONE generic orchestrator
//! interprets, and a client that starts, raises, suspends, resumes and terminates), the
//! store's faults (transient errors, unknown outcomes, delays, prefixes of works), the store
//! itself (in memory, or the file store over a simulated disk with torn writes, a full disk,
//! failed fsyncs and power cuts: [`disk`]), crashes (the runtime dropped at any point and
//! rebuilt on the same store, or on the file store reopened over what the disk kept), clock
//! jumps that expire leases, and the scheduling order they cause. The real runtime runs on one thread on the
//! virtual clock. At the end an oracle (a reference interpreter of the same programs)
//! and invariants judge the run. See `docs/testing.md`.
//!
//! ```
//! let report = durable_sim::run_seed(7);
//! assert!(report.passed(), "{:?}", report.violations);
//! assert_eq!(report.trace, durable_sim::run_seed(7).trace); // bit for bit
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod disk;
mod fault_store;
pub mod faults;
pub mod program;
mod rng;
mod shrink;
mod sim;
mod workload;
mod world;

pub use rng::Rng;
pub use shrink::{shrink, shrink_run, shrink_seed};
pub use sim::{reproduce_command, run, run_seed, Report, Root, Scenario};
pub use workload::{sim_program, sim_step, StepInput};
