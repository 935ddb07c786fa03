//! The contract between a generated environment and the runtime.
//!
//! Generated code implements [`Env`]: the raw rules of one environment instance. The
//! runtime adds what every env shares (step counting, terminal handling, auto-reset,
//! batching) on top, so that generated code stays small.

use crate::fault::R;
use crate::param::Param;
use crate::rng::Rng;

/// How an environment's observation is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// The indices of the ones of a 0/1 vector of `obs_size` features.
    Sparse,
    /// A float32 vector of `obs_size` values.
    Dense,
    /// Channels-first planes, flattened: `obs_size` = channels x rows x cols.
    Planes,
}

/// A number no earlier call returned (in this process): generated envs tag the params
/// and consts each `new` computes with it, so that copying one env over another skips
/// them when both hold the same ones.
pub fn instance_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One environment instance, as generated from a `.twl` file.
pub trait Env: Clone + Send + Sync + 'static {
    /// A JSON description of the env: params, state layout, actions, observation.
    const SPEC: &'static str;
    const OBSERVATION: Observation;
    const PLAYERS: usize;
    const CONTINUOUS: bool;
    /// How many `symmetry` blocks the env declares.
    const TWISTS: usize;
    /// Whether some action has an advisory mask (`advise`): the mask then says more than
    /// [`Env::allowed`], so a step cannot read legality from the mask.
    const ADVISORY: bool;
    /// Whether the mask evaluates, for every id of some family, a guard that loops: a
    /// random playout then draws actions by rejection first (see `batch::Slot::rollout`).
    const GUARD_LOOPS: bool = false;

    /// A new instance with the given param values (declaration order) and RNG stream.
    fn new(params: &[Param], seed: u64, stream: u64) -> R<Self>;
    /// Discrete actions, or the number of continuous values.
    fn num_actions(&self) -> usize;
    /// Features in the observation (dense size, even for sparse observations).
    fn obs_size(&self) -> usize;
    /// `[channels, rows, cols]` for planes; `[obs_size, 1, 1]` for flat observations.
    fn obs_shape(&self) -> [usize; 3];
    /// The most indices a sparse observation can have.
    fn obs_nnz_max(&self) -> usize;
    fn set_difficulty(&mut self, difficulty: i64);
    fn difficulty(&self) -> i64;
    /// Give the env a fresh random stream, keeping its state: what it draws from now on
    /// (dice, slips, spawns) no longer follows its past stream.
    fn reseed_rng(&mut self, seed: u64);
    /// Reset the state, `player` and `steps`, then run the `reset` block.
    fn reset(&mut self) -> R<()>;
    /// The action mask (guards, including advisory ones).
    fn legal(&self, out: &mut [bool]) -> R<()>;
    /// The legal actions (what [`Env::legal`] marks), in increasing order, into `ids` (at
    /// least `num_actions` long); returns how many. Generated envs list them in the mask's
    /// own walk; this default reads them off the mask, made in `mask` (`num_actions` long).
    fn legal_ids(&self, mask: &mut [bool], ids: &mut [u32]) -> R<usize> {
        self.legal(mask)?;
        let mut len = 0;
        for (a, _) in mask.iter().enumerate().filter(|(_, &m)| m) {
            ids[len] = a as u32;
            len += 1;
        }
        Ok(len)
    }
    /// Whether `action` is enforced-legal (advisory guards do not forbid).
    fn allowed(&self, action: usize) -> R<bool>;
    /// Up to `draws` uniform draws over every action id with `rng`, tested one by one:
    /// the first allowed, or `None` when all missed. Generated envs of one guarded family
    /// draw along its structure (tests that read no index once for all the draws), so
    /// what comes out is the same in law, not draw for draw.
    fn draw_allowed(&self, draws: usize, rng: &mut Rng) -> R<Option<usize>> {
        let n = self.num_actions() as u64;
        for _ in 0..draws {
            let a = rng.below(n) as usize;
            if self.allowed(a)? {
                return Ok(Some(a));
            }
        }
        Ok(None)
    }
    /// Run a discrete action's effect; rewards given during it are added to `rewards`.
    fn apply(&mut self, action: usize, rewards: &mut [f64]) -> R<()>;
    /// Run the continuous action with `values` (already clipped to their bounds).
    fn apply_values(&mut self, values: &[f64], rewards: &mut [f64]) -> R<()>;
    /// Lower and upper bounds of each continuous value.
    fn value_bounds(&self, lows: &mut [f64], highs: &mut [f64]);
    /// Add the top-level `reward` expression, evaluated on the current state.
    fn add_step_rewards(&self, rewards: &mut [f64]) -> R<()>;
    fn terminated(&self) -> R<bool>;
    fn truncated(&self) -> R<bool>;
    fn success(&self) -> R<bool>;
    /// Whose turn it is (0 for single-player envs).
    fn player(&self) -> usize;
    fn steps(&self) -> i64;
    fn set_steps(&mut self, steps: i64);
    fn observe_dense(&self, out: &mut [f32]) -> R<()>;
    /// Write the indices of the ones; returns how many were written.
    fn observe_sparse(&self, out: &mut [u32]) -> R<usize>;
    /// Symmetry `k` as permutations: feature `i` of an observation becomes feature
    /// `obs[i]` of the twisted one, and action `a` becomes action `act[a]`.
    fn twist(&self, k: usize, obs: &mut [u32], act: &mut [u32]) -> R<()>;
    /// The text picture of the `render` block.
    fn render(&self) -> R<String>;
    /// A readable name for discrete action number `action`, like `drop(3)`.
    fn action_label(&self, action: usize) -> String;
    /// The state as a flat vector of numbers (layout in the spec).
    fn state_len(&self) -> usize;
    /// How many values of the state vector each state variable takes, in order.
    fn state_lengths(&self, out: &mut [usize]);
    fn get_state(&self, out: &mut [f64]);
    fn set_state(&mut self, values: &[f64]) -> R<()>;
}

/// Which declaration action number `action` belongs to, given how many actions each
/// declaration makes (`counts`, in order), and its number within it; `(usize::MAX, 0)`
/// past the last.
/// Inlinable: it runs on every step of every env, across the crate boundary.
#[inline]
pub fn decode(counts: &[usize], action: usize) -> (usize, usize) {
    let mut rest = action;
    for (decl, &count) in counts.iter().enumerate() {
        if rest < count {
            return (decl, rest);
        }
        rest -= count;
    }
    (usize::MAX, 0)
}

/// The action plumbing every generated env shares, written once here. Generated code
/// says how to run an action by its number and where its scratch space is; the `.twl`
/// builtins `act(k)` and `random_action()` come with it.
pub trait ActionNumbers: Env {
    /// How many discrete actions each `action` declaration makes, in order.
    fn counts(&self) -> &[usize];
    /// Run action number `action`, known to be in range (legality is not checked).
    fn apply_number(&mut self, action: usize) -> R<()>;
    /// Forget the views kept for the current state, which is about to change.
    fn clear_views(&mut self);
    /// The scratch mask `random_action()` fills (sized like the env's mask; its contents
    /// are not part of the state) and the env's RNG.
    fn scratch(&mut self) -> (&mut Vec<bool>, &mut Rng);

    /// Which declaration action number `action` belongs to, and its number within it.
    fn decode(&self, action: usize) -> (usize, usize) {
        decode(self.counts(), action)
    }

    /// `act(k)`: apply action `k` when it is legal; whether it was.
    fn act_number(&mut self, action: i64) -> R<bool> {
        self.clear_views();
        if action < 0 || action as usize >= self.num_actions() || !self.allowed(action as usize)? {
            return Ok(false);
        }
        self.apply_number(action as usize)?;
        Ok(true)
    }

    /// `random_action()`: apply a uniformly drawn legal action, if there is one.
    fn random_action(&mut self) -> R<()> {
        self.clear_views();
        let mut mask = std::mem::take(self.scratch().0);
        let result = self.legal(&mut mask);
        let choice = match result {
            Ok(()) => crate::mask::pick(&mask, self.scratch().1),
            Err(_) => None,
        };
        *self.scratch().0 = mask;
        result?;
        match choice {
            Some(action) => self.apply_number(action),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decoding_walks_the_declarations_in_order() {
        let counts = [1, 0, 3, 2];
        let decoded: Vec<_> = (0..7).map(|a| decode(&counts, a)).collect();
        assert_eq!(decoded, [(0, 0), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (usize::MAX, 0)]);
        assert_eq!(decode(&[], 0), (usize::MAX, 0));
    }
}
