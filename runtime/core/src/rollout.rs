//! Rollout collection for PPO: the policy and the envs of one [`Host`], batched.
//!
//! [`collect`] runs `steps` time steps on the host's envs: observe, one batched forward
//! pass, masked sampling, one batched step, then GAE(λ) at the end. Truncated episodes are
//! bootstrapped with the value of their final state; terminated ones are not. A host that
//! is a range of a bigger batch collects that range; a native caller runs one range per
//! thread and lays the [`Rollout`]s side by side.
//!
//! Two-player zero-sum games (self-play): each row is a decision of the player to move, with
//! that player's reward and the value from that player's view. Returns chain with a sign:
//! `G_t = r_t + γ s_t G_{t+1}`, `s_t = +1` when the same player moves again after step t and
//! −1 otherwise, and GAE likewise (`δ_t = r_t + γ s_t V_{t+1} − V_t`, `A_t = δ_t + γλ s_t A_{t+1}`).
//! For single-player envs `s_t = +1`, which is the usual GAE. With an `opponent` policy, an
//! env that starts an episode plays against it with probability `pool_prob`, the learner in a
//! random seat; the opponent's rows are sampled from its network, their values are still the
//! learner's critic's (so the sign chain holds), and they are marked not-for-learning.
//!
//! Discrete actions are drawn from the masked softmax of the policy head. Continuous ones
//! are drawn from a diagonal Gaussian: the policy head gives the means and `log_std` the
//! log standard deviations; the env clips the draw to its bounds, and the unclipped draw
//! is what is recorded and scored.

use crate::batch::RolloutStats;
use crate::host::{poll, Actions, Error, Host, Layout, StatusInto, StepFlags, StepInto};
use crate::policy::{sample_masked, Input, Policy, Workspace};
use crate::rng::{Purpose, Rng};
use crate::twist::Twist;

/// How to collect.
#[derive(Clone, Copy, Debug)]
pub struct Collect<'a> {
    pub steps: usize,
    pub seed: u64,
    pub gamma: f32,
    pub lam: f32,
    /// Take the most likely action (the mean, for continuous actions) instead of a draw.
    pub deterministic: bool,
    /// Each env step draws one of these, or none, and the policy acts on the twisted view.
    pub twists: &'a [Twist],
    /// Continuous actions: the log standard deviation of each action value.
    pub log_std: Option<&'a [f32]>,
    /// Rewards are multiplied by this before GAE (episode returns stay unscaled).
    pub reward_scale: f32,
    /// Two-player games: the network that plays against the learner, and how often.
    pub opponent: Option<&'a Policy>,
    pub pool_prob: f64,
}

impl Collect<'_> {
    /// Whether these settings fit `policy` on envs of `layout`; the error says why not.
    pub fn check(&self, layout: &Layout, policy: &Policy) -> Result<(), String> {
        let (obs, actions) = (layout.obs_size, layout.num_actions);
        if layout.players != 1 && layout.players != 2 {
            return Err(format!(
                "PPO collection supports single-player envs and two-player games; this env has {} \
                                players",
                layout.players
            ));
        }
        if layout.players == 1 && self.opponent.is_some() {
            return Err("an opponent and seats are for two-player games".into());
        }
        if !(0.0..=1.0).contains(&self.pool_prob) {
            return Err(format!("pool_prob must be between 0 and 1, not {}", self.pool_prob));
        }
        for (who, p) in [("policy", Some(policy)), ("opponent", self.opponent)] {
            if let Some(p) = p {
                if p.inputs != obs || p.num_actions != actions {
                    return Err(format!(
                        "the {who} maps {} features to {} actions, but the env has {obs} features \
                                        and {actions} actions",
                        p.inputs, p.num_actions
                    ));
                }
            }
        }
        match (layout.continuous, self.log_std) {
            (true, Some(ls)) if ls.len() != actions || ls.iter().any(|v| !v.is_finite()) => {
                return Err(format!("log_std needs {actions} finite values, one per action value; got {}", ls.len()));
            }
            (true, None) => return Err("this env has continuous actions: give log_std".into()),
            (false, Some(_)) => return Err("log_std is for envs with continuous actions".into()),
            _ => {}
        }
        if layout.continuous && layout.players != 1 {
            return Err("two-player collection needs discrete actions".into());
        }
        if layout.continuous && !self.twists.is_empty() {
            return Err("twists are for envs with discrete actions".into());
        }
        if !(self.reward_scale.is_finite() && self.reward_scale > 0.0) {
            return Err(format!("reward_scale must be a positive number, not {}", self.reward_scale));
        }
        Ok(())
    }
}

/// What one host's envs did, `[steps, n, ...]` row-major (row `step * n + k` is env `k` of
/// the host at time `step`). Observations are in `obs` (dense) or `indices`/`counts`
/// (sparse); masks are empty for continuous actions, `action_values` for discrete ones.
#[derive(Clone, Debug, Default)]
pub struct Rollout {
    pub obs: Vec<f32>,
    pub indices: Vec<u32>,
    pub counts: Vec<u32>,
    pub masks: Vec<bool>,
    /// In the frame the policy saw (twisted when a twist was drawn).
    pub actions: Vec<i64>,
    pub action_values: Vec<f32>,
    pub logp: Vec<f32>,
    pub values: Vec<f32>,
    /// Scaled by `reward_scale`.
    pub rewards: Vec<f32>,
    pub dones: Vec<bool>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
    /// The player who moved at each row.
    pub player: Vec<i64>,
    /// Whether the learner made the move (false for the opponent's).
    pub learn: Vec<bool>,
    /// Episodes that ended: how many, successes, the learner's return sum, the length sum.
    pub stats: RolloutStats,
}

impl Rollout {
    fn new(rows: usize, layout: &Layout, continuous: bool) -> Rollout {
        let (sparse, a) = (layout.sparse(), layout.num_actions);
        Rollout {
            obs: vec![0.0; if sparse { 0 } else { rows * layout.obs_size }],
            indices: vec![0; if sparse { rows * layout.nnz_max } else { 0 }],
            counts: vec![0; rows],
            masks: vec![false; if continuous { 0 } else { rows * a }],
            actions: vec![0; rows],
            action_values: vec![0.0; if continuous { rows * a } else { 0 }],
            logp: vec![0.0; rows],
            values: vec![0.0; rows],
            rewards: vec![0.0; rows],
            dones: vec![false; rows],
            advantages: vec![0.0; rows],
            returns: vec![0.0; rows],
            player: vec![0; rows],
            learn: vec![false; rows],
            stats: RolloutStats::default(),
        }
    }
}

/// One observation batch of the host's envs, and its view as the policy's input.
struct Seen {
    sparse: bool,
    width: usize,
    nnz: usize,
    obs: Vec<f32>,
    idx: Vec<u32>,
    counts: Vec<u32>,
}

impl Seen {
    fn observe<H: Host>(&mut self, host: &H) -> Result<(), Error> {
        if self.sparse {
            host.observe_sparse(host.envs(), &mut self.idx, &mut self.counts)
        } else {
            host.observe(host.envs(), &mut self.obs)
        }
    }

    fn input(&self) -> Input<'_> {
        if self.sparse {
            Input::Sparse { indices: &self.idx, counts: &self.counts, stride: self.nnz }
        } else {
            Input::Dense { x: &self.obs, width: self.width }
        }
    }
}

/// Collect `cfg.steps` transitions from every env of `host` with `policy` (single-player
/// envs, or two-player zero-sum games by self-play), then GAE.
///
/// `episode_returns` (one per env, kept by the caller between calls) is each env's return so
/// far in its current episode, so episodes spanning several calls are counted whole.
/// `seats` (one per env, also kept) is, for two-player games, the learner's seat (0 or 1)
/// against `cfg.opponent`, or -1 for self-play; whenever an env starts a new episode its
/// seat is drawn again: the learner's seat with probability `pool_prob`, else -1.
pub fn collect<H: Host>(
    host: &mut H, policy: &Policy, cfg: &Collect<'_>, episode_returns: &mut [f64], seats: &mut [i64],
) -> Result<Rollout, Error> {
    let layout = host.layout();
    let envs = host.envs();
    let (start, m) = (envs.start, envs.len());
    assert!(episode_returns.len() == m && seats.len() == m, "one episode return and one seat per env");
    let a = layout.num_actions;
    let players = layout.players;
    let continuous = cfg.log_std.is_some();
    let rows = cfg.steps * m;
    let mut out = Rollout::new(rows, &layout, continuous);
    // Every step's forward pass uses the same weights: pack them once for the blocked
    // products (which also makes each row's result independent of how envs are split).
    let policy = policy.packed(layout.sparse());
    let opponent = cfg.opponent.map(|p| p.packed(layout.sparse()));
    let mut ws = Workspace::default();
    let mut seen = Seen {
        sparse: layout.sparse(),
        width: layout.obs_size,
        nnz: layout.nnz_max,
        obs: vec![0.0; m * layout.obs_size],
        idx: vec![0; m * layout.nnz_max],
        counts: vec![0; m],
    };
    let mut logits = vec![0.0f32; m * a];
    let mut values = vec![0.0f32; m];
    let mut mask = vec![false; m * a];
    let mut actions = vec![0i64; m];
    let mut action_values = vec![0.0f64; if continuous { m * a } else { 0 }];
    let mut rewards = vec![0.0f64; m * players];
    let (mut term, mut trunc) = (vec![false; m], vec![false; m]);
    let (mut success, mut player, mut steps_done, mut over) =
        (vec![false; m], vec![0i64; m], vec![0i64; m], vec![false; m]);
    // The player to move at each row, and the sign that chains its return to the next row's.
    let mut mover = vec![0i64; m];
    let mut sign = vec![1.0f32; rows];
    let mut opp_logits = vec![0.0f32; if cfg.opponent.is_some() { m * a } else { 0 }];
    let mut opp_values = vec![0.0f32; if cfg.opponent.is_some() { m } else { 0 }];
    let mut opp_ws = Workspace::default();
    let mut final_value = vec![0.0f32; rows];
    let mut truncated_at = vec![false; rows];
    let mut rngs: Vec<Rng> = envs.clone().map(|i| Rng::for_purpose(cfg.seed, Purpose::Sampling, i as u64)).collect();
    let mut chosen = vec![0usize; m];
    let mut scratch = vec![0.0f32; layout.obs_size];
    let mut mask_scratch = vec![false; a];
    let (nnz, width) = (layout.nnz_max, layout.obs_size);

    for step in 0..cfg.steps {
        poll()?;
        seen.observe(host)?;
        if players > 1 {
            host.status(
                envs.clone(),
                StatusInto { success: &mut success, player: &mut mover, steps: &mut steps_done, over: &mut over },
            )?;
        }
        if !continuous {
            host.masks(envs.clone(), &mut mask)?;
        }
        // A random twist per env and step (0 = none): the policy sees, and learns from,
        // the twisted observation and mask; its action is untwisted for the env.
        for k in 0..m {
            chosen[k] = if cfg.twists.is_empty() { 0 } else { rngs[k].below(cfg.twists.len() as u64 + 1) as usize };
            if chosen[k] == 0 {
                continue;
            }
            let tw = &cfg.twists[chosen[k] - 1];
            if seen.sparse {
                tw.sparse(&mut seen.idx[k * nnz..k * nnz + seen.counts[k] as usize]);
            } else {
                scratch.copy_from_slice(&seen.obs[k * width..(k + 1) * width]);
                tw.dense(&scratch, &mut seen.obs[k * width..(k + 1) * width]);
            }
            mask_scratch.copy_from_slice(&mask[k * a..(k + 1) * a]);
            tw.mask(&mask_scratch, &mut mask[k * a..(k + 1) * a]);
        }
        policy.forward(seen.input(), m, &mut logits, &mut values, &mut ws);
        // The opponent's turn in an env playing against it: its network picks the move.
        let opp_turn = |k: usize| cfg.opponent.is_some() && seats[k] >= 0 && seats[k] != mover[k];
        if (0..m).any(opp_turn) {
            if let Some(p) = &opponent {
                p.forward(seen.input(), m, &mut opp_logits, &mut opp_values, &mut opp_ws);
            }
        }
        for k in 0..m {
            let row = step * m + k;
            out.player[row] = mover[k];
            out.learn[row] = !opp_turn(k);
        }
        if let Some(log_std) = cfg.log_std {
            for k in 0..m {
                let row = step * m + k;
                let mut lp = 0.0f32;
                for j in 0..a {
                    let mean = logits[k * a + j];
                    let z = if cfg.deterministic { 0.0 } else { rngs[k].normal() as f32 };
                    let v = mean + log_std[j].exp() * z;
                    lp += -0.5 * z * z - log_std[j] - 0.5 * (2.0 * std::f32::consts::PI).ln();
                    action_values[k * a + j] = v as f64;
                    out.action_values[row * a + j] = v;
                }
                out.logp[row] = lp;
                out.values[row] = values[k];
            }
        } else {
            for k in 0..m {
                let legal = &mask[k * a..(k + 1) * a];
                let source = if opp_turn(k) { &opp_logits } else { &logits };
                let (action, lp) = sample_masked(&source[k * a..(k + 1) * a], legal, &mut rngs[k], cfg.deterministic);
                actions[k] = if chosen[k] == 0 { action as i64 } else { cfg.twists[chosen[k] - 1].back[action] as i64 };
                let row = step * m + k;
                out.actions[row] = action as i64; // in the frame the policy saw
                out.logp[row] = lp;
                out.values[row] = values[k];
            }
        }
        // Save what the policy saw.
        let row0 = step * m;
        if seen.sparse {
            out.indices[row0 * nnz..(row0 + m) * nnz].copy_from_slice(&seen.idx);
            out.counts[row0..row0 + m].copy_from_slice(&seen.counts);
        } else {
            out.obs[row0 * width..(row0 + m) * width].copy_from_slice(&seen.obs);
        }
        if !continuous {
            out.masks[row0 * a..(row0 + m) * a].copy_from_slice(&mask);
        }

        let chosen_actions = if continuous { Actions::Values(&action_values) } else { Actions::Discrete(&actions) };
        host.step(
            envs.clone(),
            chosen_actions,
            StepFlags::default(),
            StepInto {
                rewards: &mut rewards,
                terminated: &mut term,
                truncated: &mut trunc,
                obs: None,
                masks: None,
                success: None,
                player: None,
            },
        )?;
        host.status(
            envs.clone(),
            StatusInto { success: &mut success, player: &mut player, steps: &mut steps_done, over: &mut over },
        )?;
        let mut any_truncated = false;
        for k in 0..m {
            // (A mover outside 0..players cannot come from the generated envs; clamped to stay in bounds.)
            let r = rewards[k * players + (mover[k].max(0) as usize).min(players - 1)];
            let row = step * m + k;
            if players > 1 && player[k] != mover[k] {
                sign[row] = -1.0;
            }
            out.rewards[row] = r as f32 * cfg.reward_scale;
            let done = term[k] || trunc[k];
            out.dones[row] = done;
            // The learner's return: its seat against an opponent, else player 0's.
            episode_returns[k] += rewards[k * players + seats[k].max(0) as usize];
            if done {
                out.stats.episodes += 1;
                out.stats.successes += success[k] as u64;
                out.stats.return_sum += episode_returns[k];
                out.stats.length_sum += steps_done[k] as u64;
                episode_returns[k] = 0.0;
                if trunc[k] && !term[k] {
                    truncated_at[row] = true;
                    any_truncated = true;
                }
            }
        }
        if any_truncated {
            // Bootstrap truncated episodes from the value of their final state.
            seen.observe(host)?;
            policy.forward(seen.input(), m, &mut logits, &mut values, &mut ws);
            for k in 0..m {
                if truncated_at[step * m + k] {
                    final_value[step * m + k] = values[k];
                }
            }
        }
        for k in 0..m {
            if term[k] || trunc[k] {
                host.reset(start + k..start + k + 1)?;
                // A new episode: against the opponent (the learner in a random seat), or self-play.
                seats[k] = -1;
                if cfg.opponent.is_some() && rngs[k].next_f64() < cfg.pool_prob {
                    seats[k] = rngs[k].below(players as u64) as i64;
                }
            }
        }
    }
    // The value of the state after the last step, then GAE backwards in time.
    seen.observe(host)?;
    policy.forward(seen.input(), m, &mut logits, &mut values, &mut ws);
    for k in 0..m {
        let mut next_value = values[k];
        let mut gae = 0.0f32;
        for step in (0..cfg.steps).rev() {
            let row = step * m + k;
            let (v, r, done, s) = (out.values[row], out.rewards[row], out.dones[row], sign[row]);
            let bootstrap = if done {
                if truncated_at[row] {
                    final_value[row]
                } else {
                    0.0
                }
            } else {
                next_value
            };
            let delta = r + cfg.gamma * (s * bootstrap) - v;
            gae = delta + if done { 0.0 } else { cfg.gamma * cfg.lam * (s * gae) };
            out.advantages[row] = gae;
            out.returns[row] = gae + v;
            next_value = v;
        }
    }
    Ok(out)
}
