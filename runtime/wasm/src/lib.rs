//! The WebAssembly face of the TwisteRL runtime.
//!
//! `twisterl export --wasm` generates two small crates per env, both built on this one:
//!
//! * a wasm-bindgen crate (the JavaScript package): its `Env`, `VecEnv` and `Policy`
//!   classes delegate to [`Session`], [`VecSession`] and [`Agent`];
//! * a raw crate (no JavaScript glue) that calls [`export_raw!`]: the native plugin ABI
//!   under flat export names, for wasmtime and other hosts.
//!
//! Like the runtime core it knows nothing about the `.twl` language: an env is a type
//! implementing `twisterl_core::env::Env`, described by an [`Info`]. Features: `js` (the
//! wasm-bindgen helpers), `policy` (bundled policies: the safetensors reader and the
//! forward pass) and `train` (the PPO loop, on top of `policy`). Without them the module
//! stays small: the 8-puzzle's is about 76 KB.

pub use twisterl_core;

#[cfg(feature = "policy")]
pub mod agent;
#[cfg(feature = "policy")]
pub mod json;
pub mod params;
pub mod raw;
pub mod session;
#[cfg(feature = "train")]
pub mod trainer;
pub mod vector;

#[cfg(feature = "policy")]
pub use agent::Agent;
pub use params::{ParamKind, ParamSpec, ParamValue};
pub use session::{seed_from, Info, Session, StepInfo};
pub use vector::VecSession;

#[cfg(feature = "js")]
pub mod js;
