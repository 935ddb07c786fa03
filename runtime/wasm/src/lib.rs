//! The WebAssembly face of the TwisteRL runtime.
//!
//! `twisterl export --wasm` generates two small crates per env, both built on this one:
//!
//! * a wasm-bindgen crate (the JavaScript package): its `Env`, `VecEnv` and `Policy`
//!   classes delegate to [`Session`], [`VecSession`] and [`Agent`];
//! * a raw crate (no JavaScript glue) that calls [`export_raw!`]: the native plugin ABI
//!   under flat export names, for wasmtime and other hosts.
//!
//! Like the runtime core this crate has no dependencies beyond it, and knows nothing about
//! the `.twl` language: an env is a type implementing `twisterl_core::env::Env`.

pub use twisterl_core;

pub mod agent;
pub mod json;
pub mod params;
pub mod raw;
pub mod session;
pub mod vector;

pub use agent::Agent;
pub use params::ParamValue;
pub use session::{seed_from, Session, StepInfo};
pub use vector::VecSession;

#[cfg(feature = "js")]
pub mod js;
