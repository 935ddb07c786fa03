//! Training in Rust: the PPO and AlphaZero updates, with no framework.
//!
//! [`gemm`] is the matrix product every pass runs on; [`net`] the forward pass that keeps
//! what backward needs and the backward pass itself; [`loss`] the learners' losses and their
//! gradients; [`adam`] the optimizer and gradient clipping, as torch computes them;
//! [`params`] a network's parameters as one ordered list, in torch's order and layouts;
//! [`learner`] the update steps that tie them together; [`explore`] the count-based
//! exploration bonus; and [`ppo`] the PPO loop on any host.

pub mod adam;
pub mod explore;
pub mod gemm;
pub mod learner;
pub mod loss;
pub mod net;
pub mod params;
pub mod pool;
pub mod ppo;
pub(crate) mod wide;

pub use adam::AdamConfig;
pub use learner::{Learner, Rollout};
pub use loss::{AzStats, PpoCoefs, PpoStats};
pub use explore::CountBonus;
pub use ppo::{Intrinsic, Iteration, PpoSettings, PpoTrainer};
