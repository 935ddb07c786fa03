//! The pure-Rust core of the TwisteRL runtime.
//!
//! It knows nothing about the `.twl` language. Generated environments implement [`Env`]
//! and use the checked operations in [`ops`], the random streams in [`rng`] and the
//! error values in [`fault`]. No PyO3 and no allocation on the step path, so it builds
//! for `wasm32-unknown-unknown` as well as natively.

pub mod abi;
pub mod batch;
pub mod env;
pub mod fault;
pub mod mcts;
pub mod ops;
pub mod param;
pub mod policy;
pub mod rng;

/// Everything generated code needs, in one import.
pub mod prelude {
    pub use crate::batch::{Batch, RolloutStats, Slot, StepOut};
    pub use crate::env::{Env, Observation};
    pub use crate::fault::{At, Fault, FaultKind, R};
    pub use crate::ops;
    pub use crate::param::Param;
    pub use crate::rng::Rng;
}
