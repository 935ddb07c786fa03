//! The pure-Rust core of the TwisteRL runtime.
//!
//! It knows nothing about the `.twl` language. Generated environments implement [`Env`]
//! and use the checked operations in [`ops`], the random streams in [`rng`] and the
//! error values in [`fault`]. No PyO3 and no allocation on the step path, so it builds
//! for `wasm32-unknown-unknown` as well as natively.
//!
//! What runs on every host is here too, written against the [`host::Host`] trait (what a
//! batch of envs can do): rollouts with GAE ([`rollout`]), search ([`search`], on the tree
//! of [`mcts`]) and the policy kernels ([`policy`]). A plugin's batch is a host through its
//! C table ([`plugin`], the host side of [`abi`]); a statically linked [`batch::Batch`] is
//! one directly (the WebAssembly runtime's).

pub mod abi;
pub mod batch;
pub mod env;
pub mod fault;
pub mod grid;
pub mod host;
pub mod learn;
pub mod mask;
pub mod mcts;
pub mod memo;
pub mod ops;
pub mod param;
pub mod plugin;
pub mod policy;
pub mod rng;
pub mod rollout;
pub mod search;
pub mod twist;

/// Everything generated code needs, in one import.
pub mod prelude {
    pub use crate::batch::{Batch, RolloutStats, Slot, StepOut};
    pub use crate::env::{ActionNumbers, Env, Observation};
    pub use crate::fault::{At, Fault, FaultKind, R};
    pub use crate::grid::Grid;
    pub use crate::memo::Cached;
    pub use crate::ops;
    pub use crate::param::Param;
    pub use crate::rng::Rng;
}
