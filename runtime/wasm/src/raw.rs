//! The raw WebAssembly module: the native plugin ABI (`twisterl_core::abi`), with each
//! function of the table exported under its own name, so that a host without JavaScript
//! (wasmtime, wasmer, a game engine) can call it directly.
//!
//! | export | what |
//! |---|---|
//! | `memory` | the module's linear memory |
//! | `twl_abi_version() -> u32` | the plugin ABI version (`twisterl_core::abi::ABI_VERSION`) |
//! | `twl_spec_ptr() -> ptr`, `twl_spec_len() -> usize` | the env's JSON spec, UTF-8 |
//! | `twl_observation_kind`, `twl_players`, `twl_continuous`, `twl_twists` | as in the table |
//! | `twl_alloc(bytes) -> ptr`, `twl_free(ptr, bytes)` | buffers the host fills and reads (8-byte aligned) |
//! | `twl_create`, `twl_destroy`, `twl_sizes`, `twl_reset`, `twl_step`, ... | the table's functions |
//!
//! All functions take and return plain numbers: pointers and `usize` are `i32`, `u64` and
//! `i64` are `i64`. `twl_create`'s params are 8 bytes each, in declaration order: an
//! `i64` for an int, a bool (0 or 1) or an enum variant, an `f64` for a float. `twl_sizes(handle, out)` writes the eight `usize` of `abi::Sizes` to
//! `out` instead of returning the struct: num_envs, num_actions, obs_size, nnz_max,
//! state_len, then the observation shape (channels, rows, cols). A function that can fail returns 0 on success,
//! or 1 after writing a `FaultOut` (48 bytes: kind, line, col as u32 at 0, 4, 8; then
//! a, b, c, env as i64 at 16, 24, 32, 40). Nothing panics across the boundary.

/// Allocate `bytes` (8-byte aligned) for the host; 0 when `bytes` is 0 or too large.
pub fn alloc(bytes: usize) -> *mut u8 {
    match std::alloc::Layout::from_size_align(bytes, 8) {
        Ok(layout) if bytes > 0 => unsafe { std::alloc::alloc(layout) },
        _ => std::ptr::null_mut(),
    }
}

/// Free what [`alloc`] returned, with the same `bytes`.
///
/// # Safety
/// `ptr` must come from `alloc(bytes)` and not be freed twice.
pub unsafe fn free(ptr: *mut u8, bytes: usize) {
    if let Ok(layout) = std::alloc::Layout::from_size_align(bytes, 8) {
        if !ptr.is_null() && bytes > 0 {
            std::alloc::dealloc(ptr, layout);
        }
    }
}

/// Export `$t` as a raw module: the plugin table's functions under flat names.
#[macro_export]
macro_rules! export_raw {
    ($t:ty) => {
        static TWISTERL_TABLE: $crate::twisterl_core::abi::PluginV1 = $crate::twisterl_core::abi::PluginV1::of::<$t>();

        mod twisterl_raw {
            use $crate::twisterl_core::abi::{FaultOut, Handle, Sizes, StepOutputs};
            use $crate::twisterl_core::batch::RolloutStats;

            use super::TWISTERL_TABLE as T;

            #[no_mangle]
            pub extern "C" fn twl_abi_version() -> u32 {
                T.abi_version
            }
            #[no_mangle]
            pub extern "C" fn twl_spec_ptr() -> *const u8 {
                T.spec_ptr
            }
            #[no_mangle]
            pub extern "C" fn twl_spec_len() -> usize {
                T.spec_len
            }
            #[no_mangle]
            pub extern "C" fn twl_observation_kind() -> u32 {
                T.observation
            }
            #[no_mangle]
            pub extern "C" fn twl_players() -> u32 {
                T.players
            }
            #[no_mangle]
            pub extern "C" fn twl_continuous() -> u32 {
                T.continuous
            }
            #[no_mangle]
            pub extern "C" fn twl_twists() -> u32 {
                T.twists
            }
            #[no_mangle]
            pub extern "C" fn twl_alloc(bytes: usize) -> *mut u8 {
                $crate::raw::alloc(bytes)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_free(ptr: *mut u8, bytes: usize) {
                $crate::raw::free(ptr, bytes)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_create(params: *const $crate::twisterl_core::param::Param, n_params: usize,
                                                num_envs: usize, seed: u64,
                                                out: *mut FaultOut) -> Handle {
                (T.create)(params, n_params, num_envs, seed, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_destroy(h: Handle) {
                (T.destroy)(h)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_sizes(h: Handle, out: *mut usize) {
                let s: Sizes = (T.sizes)(h);
                let [c, rows, cols] = s.obs_shape;
                let values = [s.num_envs, s.num_actions, s.obs_size, s.nnz_max, s.state_len, c, rows, cols];
                ::std::ptr::copy_nonoverlapping(values.as_ptr(), out, values.len());
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_value_bounds(h: Handle, lows: *mut f64, highs: *mut f64) {
                (T.value_bounds)(h, lows, highs)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_set_difficulty(h: Handle, start: usize, end: usize, difficulty: i64) {
                (T.set_difficulty)(h, start, end, difficulty)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_reseed(h: Handle, start: usize, end: usize, seed: u64,
                                                out: *mut FaultOut) -> i32 {
                (T.reseed)(h, start, end, seed, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_reset(h: Handle, start: usize, end: usize, out: *mut FaultOut) -> i32 {
                (T.reset)(h, start, end, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_step(h: Handle, start: usize, end: usize, actions: *const i64,
                                              rewards: *mut f64, terminated: *mut u8, truncated: *mut u8,
                                              flags: u8, out: *mut FaultOut) -> i32 {
                (T.step)(h, start, end, actions, rewards, terminated, truncated, flags, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_step_values(h: Handle, start: usize, end: usize, values: *const f64,
                                                     rewards: *mut f64, terminated: *mut u8, truncated: *mut u8,
                                                     flags: u8, out: *mut FaultOut) -> i32 {
                (T.step_values)(h, start, end, values, rewards, terminated, truncated, flags, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_step_observe(h: Handle, start: usize, end: usize, actions: *const i64,
                                                      values: *const f64, flags: u8, outs: *const StepOutputs,
                                                      out: *mut FaultOut) -> i32 {
                (T.step_observe)(h, start, end, actions, values, flags, outs, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_observe(h: Handle, start: usize, end: usize, obs: *mut f32,
                                                 out: *mut FaultOut) -> i32 {
                (T.observe)(h, start, end, obs, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_observe_sparse(h: Handle, start: usize, end: usize, idx: *mut u32,
                                                        counts: *mut u32, out: *mut FaultOut) -> i32 {
                (T.observe_sparse)(h, start, end, idx, counts, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_masks(h: Handle, start: usize, end: usize, masks: *mut u8,
                                               out: *mut FaultOut) -> i32 {
                (T.masks)(h, start, end, masks, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_status(h: Handle, start: usize, end: usize, success: *mut u8,
                                                player: *mut i64, steps: *mut i64, over: *mut u8,
                                                out: *mut FaultOut) -> i32 {
                (T.status)(h, start, end, success, player, steps, over, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_render(h: Handle, i: usize, buf: *mut u8, cap: usize, len: *mut usize,
                                                out: *mut FaultOut) -> i32 {
                (T.render)(h, i, buf, cap, len, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_get_state(h: Handle, i: usize, values: *mut f64, out: *mut FaultOut) -> i32 {
                (T.get_state)(h, i, values, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_set_state(h: Handle, i: usize, values: *const f64, n: usize,
                                                   out: *mut FaultOut) -> i32 {
                (T.set_state)(h, i, values, n, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_random_steps(h: Handle, start: usize, end: usize, steps: u64, seed: u64,
                                                      observe: u8, stats: *mut RolloutStats,
                                                      out: *mut FaultOut) -> i32 {
                (T.random_steps)(h, start, end, steps, seed, observe, stats, out)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_action_label(h: Handle, i: usize, action: usize, buf: *mut u8, cap: usize,
                                                      len: *mut usize) -> i32 {
                (T.action_label)(h, i, action, buf, cap, len)
            }
            #[no_mangle]
            pub unsafe extern "C" fn twl_twist(h: Handle, i: usize, k: usize, obs: *mut u32, act: *mut u32,
                                               out: *mut FaultOut) -> i32 {
                (T.twist)(h, i, k, obs, act, out)
            }
        }
    };
}
