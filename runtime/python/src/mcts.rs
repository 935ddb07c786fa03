//! Monte Carlo tree search over plugin envs: AlphaZero self-play, arenas, puzzle solving
//! and single searches, with the GIL released and games spread over the batch's threads.
//!
//! How a simulation reaches a leaf. The search never snapshots states: each simulation
//! copies the root env into a scratch slot (`copy_env`), gives the copy a fresh random
//! stream (`reseed_rng`, drawn from the game's search stream) and replays the path's
//! actions (`step_observe`). So chance is sampled anew in every simulation, never read
//! from the root's own future draws: the search is open-loop, a node's statistics average
//! over the dice, and each simulation backs up the rewards, turns and ending its own
//! replay saw (a replay that ends early, or finds a later action illegal after other dice,
//! stops there). Deterministic envs draw nothing in steps, so their tree is exact. Results
//! depend only on the root state and the seed.
//!
//! Batched leaf evaluation. Each thread runs its games in lockstep rounds: every game
//! whose search is unfinished selects up to `leaf_batch` leaves (virtual loss keeps them
//! apart); all of the thread's leaves that need the network are observed into one matrix
//! and evaluated in one forward pass; then they are expanded and backed up. A random-
//! rollout evaluator (pure MCTS) evaluates each leaf at once by one random playout.
//!
//! Games. Game `j` runs on games slot `j % num_slots` (so results do not depend on
//! timing), with scratch slots `slot * leaf_batch ..`; its RNG is stream `j` of the seed,
//! and its env is reseeded from the seed and `j / tries` before its reset (tries of one
//! episode start from the same state).

use std::panic::{catch_unwind, AssertUnwindSafe};

use numpy::{PyArray1, PyArray2, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rayon::prelude::*;
use twisterl_core::abi::{FaultOut, Handle, PluginV1, StepOutputs};
use twisterl_core::mcts::{masked_softmax, Rule, Step, Tree};
use twisterl_core::policy::{Input, Policy as CorePolicy, Workspace};
use twisterl_core::rng::{Purpose, Rng};

use crate::batch::Batch;
use crate::error::fault_error;
use crate::policy::Policy;

/// Why a search stopped: a fault of the env, or a problem described in words.
enum Fail {
    Fault(FaultOut),
    Msg(String),
}

type Res<T> = Result<T, Fail>;

/// `Err` once the user asked the work to stop (Ctrl-C).
fn interrupted() -> Res<()> {
    if crate::interrupt::requested() {
        return Err(Fail::Fault(crate::error::interrupted_fault()));
    }
    Ok(())
}

fn check(status: i32, out: &FaultOut) -> Res<()> {
    if status == 0 { Ok(()) } else { Err(Fail::Fault(*out)) }
}

fn to_py(f: Fail) -> PyErr {
    match f {
        Fail::Fault(out) => fault_error(&out),
        Fail::Msg(m) => PyValueError::new_err(m),
    }
}

/// A player: a search (with a network or random rollouts) or uniformly random moves.
pub struct Agent {
    policy: Option<CorePolicy>,
    /// Uniformly random legal moves, no search.
    random: bool,
    simulations: usize,
    rule: Rule,
    leaf_batch: usize,
    dirichlet_alpha: f32,
    dirichlet_frac: f32,
    rollout_limit: usize,
    /// Network leaves are evaluated under each of these symmetries and averaged.
    twists: Vec<Twist>,
}

/// A symmetry: feature `i` becomes `obs[i]`, action `a` becomes `act[a]`.
pub struct Twist {
    obs: Vec<u32>,
    act: Vec<u32>,
}

impl Agent {
    /// From a dict: kind ("net", "rollout" or "random"), policy, simulations, c_puct,
    /// uct_c, fpu, leaf_batch, dirichlet_alpha, dirichlet_frac, rollout_limit.
    fn from_dict(d: &Bound<'_, PyDict>) -> PyResult<Agent> {
        macro_rules! get {
            ($k:expr, $t:ty, $default:expr) => {
                match d.get_item($k)? {
                    Some(v) if !v.is_none() => v.extract::<$t>().map_err(|_| {
                        PyValueError::new_err(format!("search option `{}` must be {}", $k, stringify!($t)))
                    })?,
                    _ => $default,
                }
            };
        }
        let known = ["kind", "policy", "simulations", "c_puct", "uct_c", "fpu", "leaf_batch", "dirichlet_alpha",
                     "dirichlet_frac", "rollout_limit", "twists"];
        for k in d.keys() {
            let k: String = k.extract()?;
            if !known.contains(&k.as_str()) {
                return Err(PyValueError::new_err(format!("unknown search option `{k}`; known: {}", known.join(", "))));
            }
        }
        let kind: String = get!("kind", String, "net".to_string());
        let simulations: usize = get!("simulations", usize, 100usize);
        let leaf_batch: usize = get!("leaf_batch", usize, 1usize);
        if kind != "random" && simulations < 1 {
            return Err(PyValueError::new_err("simulations must be at least 1"));
        }
        if leaf_batch < 1 {
            return Err(PyValueError::new_err("leaf_batch must be at least 1"));
        }
        let c_puct: f32 = get!("c_puct", f32, 1.5f32);
        let uct_c: f32 = get!("uct_c", f32, 2.0f32);
        let fpu: f32 = get!("fpu", f32, 0.0f32);
        let alpha: f32 = get!("dirichlet_alpha", f32, 0.3f32);
        let frac: f32 = get!("dirichlet_frac", f32, 0.0f32);
        if !(alpha > 0.0) || !(0.0..=1.0).contains(&frac) || !c_puct.is_finite() || !uct_c.is_finite() {
            return Err(PyValueError::new_err(
                "dirichlet_alpha must be positive, dirichlet_frac in [0, 1], c_puct and uct_c finite"));
        }
        let rollout_limit: usize = get!("rollout_limit", usize, 100_000usize);
        let (policy, random, rule) = match kind.as_str() {
            "net" => {
                let p = d.get_item("policy")?.ok_or_else(|| PyValueError::new_err("a \"net\" agent needs a policy"))?;
                let p = p.cast::<Policy>()
                    .map_err(|_| PyValueError::new_err("policy must be a twisterl._core.Policy"))?;
                (Some(p.borrow().inner.clone()), false, Rule::Puct { c_puct, fpu })
            }
            "rollout" => (None, false, Rule::Uct { c: uct_c }),
            "random" => (None, true, Rule::Uct { c: uct_c }),
            other => return Err(PyValueError::new_err(format!(
                "agent kind must be \"net\", \"rollout\" or \"random\", not {other:?}"))),
        };
        let twists: Vec<(Vec<u32>, Vec<u32>)> = get!("twists", Vec<(Vec<u32>, Vec<u32>)>, Vec::new());
        let twists = twists.into_iter().map(|(obs, act)| Twist { obs, act }).collect();
        Ok(Agent { policy, random, simulations, rule, leaf_batch, dirichlet_alpha: alpha, dirichlet_frac: frac,
                   rollout_limit, twists })
    }
}

/// The envs: the games batch (one slot per concurrent game) and the scratch batch.
#[derive(Clone, Copy)]
struct Envs {
    t: &'static PluginV1,
    games: usize,
    scratch: usize,
    players: usize,
    actions: usize,
    obs: usize,
    nnz: usize,
    sparse: bool,
    state_len: usize,
}

/// One game in progress on a games slot.
struct Game {
    id: usize,
    slot: usize,
    /// The first of this game's `leaf_batch` scratch slots.
    scratch0: usize,
    tree: Tree,
    rng: Rng,
    sims: usize,
    searching: bool,
    moves: usize,
    /// Which agent plays each player.
    seats: Vec<usize>,
    returns: Vec<f64>,
    /// Per move: the player to move and the per-player rewards of the step.
    movers: Vec<u32>,
    step_rewards: Vec<f64>,
    actions: Vec<i64>,
    root_mask: Vec<u8>,
    first_record: usize,
}

/// A leaf waiting for the network.
struct Pending {
    game: usize,
    scratch: usize,
    path: Vec<u32>,
    /// What this simulation's replay said along `path`.
    steps: Vec<Step>,
    mask: Vec<u8>,
}

/// What the thread writes for training: one row per move.
#[derive(Default)]
struct Records {
    game: Vec<usize>,
    obs: Vec<f32>,
    idx: Vec<u32>,
    counts: Vec<u32>,
    masks: Vec<u8>,
    policy: Vec<f32>,
    value: Vec<f32>,
    player: Vec<i64>,
    /// The move number of the row in its game.
    mv: Vec<usize>,
}

/// The outcome of one game.
#[derive(Clone, Default)]
struct Outcome {
    returns: Vec<f64>,
    length: usize,
    success: bool,
    truncated: bool,
    actions: Vec<i64>,
    seats: Vec<usize>,
}

struct Options {
    num_games: usize,
    tries: usize,
    seed: u64,
    temperature: f32,
    temp_moves: usize,
    retry_temperature: f32,
    record: bool,
    max_moves: usize,
    start_state: Option<Vec<f64>>,
}

fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One thread's share: games slots `slots`, their trees and buffers.
struct Worker<'a> {
    e: Envs,
    agents: &'a [Agent],
    ws: Workspace,
    out: FaultOut,
    rewards: Vec<f64>,
    path: Vec<u32>,
    /// What the last replay said along `path`.
    steps: Vec<Step>,
    mask: Vec<u8>,
    probs: Vec<f32>,
    logits: Vec<f32>,
    values: Vec<f32>,
    obs: Vec<f32>,
    idx: Vec<u32>,
    counts: Vec<u32>,
}

impl<'a> Worker<'a> {
    fn new(e: Envs, agents: &'a [Agent]) -> Worker<'a> {
        Worker { e, agents, ws: Workspace::default(), out: FaultOut::empty(), rewards: vec![0.0; e.players],
                 path: Vec::new(), steps: Vec::new(), mask: vec![0; e.actions], probs: vec![0.0; e.actions], logits: Vec::new(),
                 values: Vec::new(), obs: Vec::new(), idx: Vec::new(), counts: Vec::new() }
    }

    fn gh(&self) -> Handle {
        self.e.games as Handle
    }

    fn sh(&self) -> Handle {
        self.e.scratch as Handle
    }

    /// One step of env `i` of batch `h`: rewards into `self.rewards`, the new mask into
    /// `mask`; returns (ended, player to move).
    unsafe fn step(&mut self, h: Handle, i: usize, action: i64, mask: *mut u8) -> Res<(bool, bool, u32)> {
        let (mut term, mut trunc, mut player) = (0u8, 0u8, 0i64);
        let outs = StepOutputs { rewards: self.rewards.as_mut_ptr(), terminated: &mut term, truncated: &mut trunc,
                                 obs: std::ptr::null_mut(), masks: mask, success: std::ptr::null_mut(),
                                 player: &mut player };
        let a = [action];
        check((self.e.t.step_observe)(h, i, i + 1, a.as_ptr(), std::ptr::null(), 0, &outs, &mut self.out), &self.out)?;
        Ok((term != 0, trunc != 0, player as u32))
    }

    /// An error if games slot `slot` is in a state where the episode is over.
    unsafe fn refuse_ended(&mut self, slot: usize) -> Res<()> {
        let mut ended = 0u8;
        check((self.e.t.ends_here)(self.gh(), slot, &mut ended, &mut self.out), &self.out)?;
        if ended != 0 {
            return Err(Fail::Msg("the episode is over in this state: there is nothing to search".into()));
        }
        Ok(())
    }

    /// The player to move and the mask of env `i` of batch `h` (mask into `mask`).
    unsafe fn look(&mut self, h: Handle, i: usize, mask: *mut u8) -> Res<(u32, bool)> {
        let (mut success, mut player, mut steps, mut over) = (0u8, 0i64, 0i64, 0u8);
        check((self.e.t.status)(h, i, i + 1, &mut success, &mut player, &mut steps, &mut over, &mut self.out),
              &self.out)?;
        check((self.e.t.masks)(h, i, i + 1, mask, &mut self.out), &self.out)?;
        Ok((player as u32, over != 0))
    }

    /// Copy the root (games slot `slot`) into scratch slot `s`, give the copy a fresh
    /// random stream from `chance`, and replay `path`. What the env says at each node goes
    /// into `self.steps` (and the nodes); the leaf's mask is left in `self.mask`. Chance can
    /// end the episode early or make a later action illegal on this replay: the path is
    /// then cut where this replay stopped (its remaining pending visits cancelled).
    unsafe fn replay(&mut self, tree: &mut Tree, root_mask: &[u8], slot: usize, s: usize, path: &mut Vec<u32>,
                     chance: u64) -> Res<()> {
        check((self.e.t.copy_env)(self.gh(), slot, self.sh(), s, &mut self.out), &self.out)?;
        check((self.e.t.reseed_rng)(self.sh(), s, chance, &mut self.out), &self.out)?;
        let mask = self.mask.as_mut_ptr();
        self.mask.copy_from_slice(root_mask); // the root is the same state every time
        self.steps.clear();
        self.steps.push(Step { reward: 0.0, player: tree.nodes[0].player, terminal: false });
        for k in 1..path.len() {
            let action = tree.nodes[path[k] as usize].action as usize;
            if self.mask.get(action).is_none_or(|&m| m == 0) {
                tree.cancel(&path[k..]);
                path.truncate(k);
                break;
            }
            let (term, trunc, player) = self.step(self.sh(), s, action as i64, mask)?;
            let mover = self.steps[k - 1].player as usize;
            let step = Step { reward: self.rewards[mover.min(self.e.players - 1)] as f32, player,
                              terminal: term || trunc };
            tree.reach(path[k], step.reward, step.terminal, player);
            self.steps.push(step);
            if step.terminal && k + 1 < path.len() {
                tree.cancel(&path[k + 1..]);
                path.truncate(k + 1);
                break;
            }
        }
        Ok(())
    }

    /// A random playout from scratch slot `s` (its mask in `self.mask`): the sum of the
    /// rewards of player `player` until the episode ends or `limit` steps.
    unsafe fn rollout(&mut self, s: usize, player: u32, rng: &mut Rng, limit: usize) -> Res<f64> {
        let mut total = 0.0;
        for _ in 0..limit {
            interrupted()?;
            let n = self.mask.iter().filter(|&&m| m != 0).count() as u64;
            if n == 0 {
                break;
            }
            let mut k = rng.below(n);
            let mut action = 0;
            for (a, &m) in self.mask.iter().enumerate() {
                if m != 0 {
                    if k == 0 {
                        action = a;
                        break;
                    }
                    k -= 1;
                }
            }
            let mask = self.mask.as_mut_ptr();
            let (term, trunc, _) = self.step(self.sh(), s, action as i64, mask)?;
            total += self.rewards[player as usize];
            if term || trunc {
                break;
            }
        }
        Ok(total)
    }

    /// Select up to `leaf_batch` leaves of game `g`'s tree: terminal ones and rollouts
    /// are backed up at once, network leaves are queued in `pending`.
    unsafe fn gather(&mut self, games: &mut [Game], g: usize, agent: usize, pending: &mut Vec<Pending>) -> Res<()> {
        let agents = self.agents;
        let a = &agents[agent];
        let want = a.leaf_batch.min(a.simulations - games[g].sims);
        let mut path = std::mem::take(&mut self.path);
        for j in 0..want {
            let game = &mut games[g];
            game.tree.select(&mut game.rng, &mut path);
            if game.tree.nodes[*path.last().unwrap() as usize].pending > 1 {
                game.tree.cancel(&path);
                break; // this leaf is already waiting: evaluate what we have
            }
            // Every simulation replays, terminal leaves too: with chance in the env, the
            // same actions may end differently this time.
            let s = game.scratch0 + j;
            let slot = game.slot;
            let chance = game.rng.next_u64();
            let game = &mut games[g];
            self.replay(&mut game.tree, &game.root_mask, slot, s, &mut path, chance)?;
            let leaf = *path.last().unwrap();
            let mut steps = std::mem::take(&mut self.steps);
            let game = &mut games[g];
            let here = *steps.last().unwrap();
            let legal = self.mask.iter().any(|&m| m != 0);
            if here.terminal || !legal {
                if !here.terminal {
                    game.tree.reach(leaf, here.reward, true, here.player); // a dead end
                    steps.last_mut().unwrap().terminal = true;
                }
                game.tree.backup_sampled(&path, &steps, 0.0);
                game.sims += 1;
            } else if a.policy.is_some() {
                pending.push(Pending { game: g, scratch: s, path: path.clone(), steps: steps.clone(),
                                       mask: self.mask.clone() });
            } else {
                let legal: Vec<bool> = self.mask.iter().map(|&m| m != 0).collect();
                let mut rng = std::mem::replace(&mut games[g].rng, Rng::new(0, 0));
                let v = self.rollout(s, here.player, &mut rng, a.rollout_limit);
                let game = &mut games[g];
                game.rng = rng;
                let v = v?;
                let uniform = vec![1.0f32; legal.len()];
                game.tree.expand(leaf, &legal, &uniform);
                if leaf == 0 {
                    game.tree.add_root_noise(a.dirichlet_alpha, a.dirichlet_frac, &mut game.rng);
                }
                game.tree.backup_sampled(&path, &steps, v);
                game.sims += 1;
            }
            self.steps = steps;
        }
        self.path = path;
        Ok(())
    }

    /// Evaluate the queued leaves of agent `agent` in one forward pass; expand and back up.
    unsafe fn evaluate(&mut self, games: &mut [Game], agent: usize, pending: &mut Vec<Pending>) -> Res<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let agents = self.agents;
        let a = &agents[agent];
        let policy = a.policy.as_ref().expect("network leaves come from network agents");
        let n = pending.len();
        let (na, e) = (self.e.actions, self.e);
        // With twists, each leaf is evaluated once per twist (rows `k * views + t`) and the
        // priors and values are averaged back in the leaf's own frame.
        let views = a.twists.len().max(1);
        let rows = n * views;
        if e.sparse {
            self.idx.resize(rows * e.nnz, 0);
            self.counts.resize(rows, 0);
            for (k, p) in pending.iter().enumerate() {
                let r = k * views;
                check((e.t.observe_sparse)(self.sh(), p.scratch, p.scratch + 1, self.idx.as_mut_ptr().add(r * e.nnz),
                                           self.counts.as_mut_ptr().add(r), &mut self.out), &self.out)?;
                for (t, tw) in a.twists.iter().enumerate().skip(1) {
                    let c = self.counts[r] as usize;
                    self.counts[r + t] = c as u32;
                    for j in 0..c {
                        self.idx[(r + t) * e.nnz + j] = tw.obs[self.idx[r * e.nnz + j] as usize];
                    }
                }
                if let Some(tw) = a.twists.first() {
                    for x in &mut self.idx[r * e.nnz..r * e.nnz + self.counts[r] as usize] {
                        *x = tw.obs[*x as usize];
                    }
                }
            }
        } else {
            self.obs.resize(rows * e.obs, 0.0);
            for (k, p) in pending.iter().enumerate() {
                let r = k * views;
                check((e.t.observe)(self.sh(), p.scratch, p.scratch + 1, self.obs.as_mut_ptr().add(r * e.obs),
                                    &mut self.out), &self.out)?;
                if !a.twists.is_empty() {
                    let raw = self.obs[r * e.obs..(r + 1) * e.obs].to_vec();
                    for (t, tw) in a.twists.iter().enumerate() {
                        for (i, &x) in raw.iter().enumerate() {
                            self.obs[(r + t) * e.obs + tw.obs[i] as usize] = x;
                        }
                    }
                }
            }
        }
        self.logits.resize(rows * na, 0.0);
        self.values.resize(rows, 0.0);
        let input = if e.sparse {
            Input::Sparse { indices: &self.idx, counts: &self.counts, stride: e.nnz }
        } else {
            Input::Dense { x: &self.obs, width: e.obs }
        };
        policy.forward(input, rows, &mut self.logits, &mut self.values, &mut self.ws);
        let mut legal = vec![false; na];
        let mut twisted = vec![false; na];
        let mut avg = vec![0.0f32; na];
        for (k, p) in pending.drain(..).enumerate() {
            for (l, &m) in legal.iter_mut().zip(&p.mask) {
                *l = m != 0;
            }
            let mut v = 0.0f64;
            if a.twists.is_empty() {
                masked_softmax(&self.logits[k * na..(k + 1) * na], &legal, &mut self.probs);
                v = self.values[k] as f64;
            } else {
                avg.iter_mut().for_each(|x| *x = 0.0);
                for (t, tw) in a.twists.iter().enumerate() {
                    let r = k * views + t;
                    for (act, &m) in legal.iter().enumerate() {
                        twisted[tw.act[act] as usize] = m;
                    }
                    masked_softmax(&self.logits[r * na..(r + 1) * na], &twisted, &mut self.probs);
                    for act in 0..na {
                        avg[act] += self.probs[tw.act[act] as usize] / views as f32;
                    }
                    v += self.values[r] as f64 / views as f64;
                }
                self.probs.copy_from_slice(&avg);
            }
            let game = &mut games[p.game];
            let leaf = *p.path.last().unwrap();
            game.tree.expand(leaf, &legal, &self.probs);
            if leaf == 0 {
                game.tree.add_root_noise(a.dirichlet_alpha, a.dirichlet_frac, &mut game.rng);
            }
            game.tree.backup_sampled(&p.path, &p.steps, if v.is_finite() { v } else { 0.0 });
            game.sims += 1;
        }
        Ok(())
    }

    /// Run lockstep rounds until every game in `games` with `searching` set has finished
    /// its search.
    unsafe fn search_all(&mut self, games: &mut [Game]) -> Res<()> {
        let mut pending: Vec<Vec<Pending>> = (0..self.agents.len()).map(|_| Vec::new()).collect();
        loop {
            interrupted()?;
            let mut any = false;
            for g in 0..games.len() {
                if !games[g].searching {
                    continue;
                }
                let agent = self.agent_of(&games[g]);
                if games[g].sims >= self.agents[agent].simulations {
                    games[g].searching = false;
                    continue;
                }
                any = true;
                self.gather(games, g, agent, &mut pending[agent])?;
            }
            if !any {
                return Ok(());
            }
            for (agent, queue) in pending.iter_mut().enumerate() {
                self.evaluate(games, agent, queue)?;
            }
        }
    }

    fn agent_of(&self, game: &Game) -> usize {
        let player = game.tree.root().player as usize;
        game.seats[player.min(game.seats.len() - 1)]
    }

    /// Prepare game `game`'s tree for a search from its games slot.
    unsafe fn start_search(&mut self, game: &mut Game) -> Res<bool> {
        game.tree.clear();
        game.sims = 0;
        let mask = game.root_mask.as_mut_ptr();
        let (player, over) = self.look(self.gh(), game.slot, mask)?;
        if over {
            return Err(Fail::Msg("the episode is over in this state: there is nothing to search".into()));
        }
        if !game.root_mask.iter().any(|&m| m != 0) {
            return Err(Fail::Msg("no action is legal in this state: there is nothing to search".into()));
        }
        game.tree.nodes[0].player = player;
        let agent = self.agent_of(game);
        if let Some(a) = self.agents.get(agent) {
            if a.random {
                return Ok(false);
            }
        }
        let rule = self.agents[agent].rule;
        game.tree.rule = rule;
        game.searching = true;
        Ok(true)
    }
}

/// Play `num_games` games on `games`' slots with `agents` (one per player, in seat order
/// for game 0; seats rotate with the game number so each agent plays each side).
unsafe fn play_range(e: Envs, agents: &[Agent], opts: &Options, max_leaf: usize, slots: (usize, usize),
                     num_slots: usize) -> Res<(Vec<(usize, Outcome)>, Records)> {
    let mut w = Worker::new(e, agents);
    let mut records = Records::default();
    let mut outcomes = Vec::new();
    let seats_for = |id: usize| -> Vec<usize> {
        let n = e.players.max(1);
        (0..n).map(|p| if agents.len() == 1 { 0 } else { (p + id) % agents.len() }).collect()
    };
    let mut games: Vec<Game> = Vec::new();
    let mut next: Vec<usize> = Vec::new(); // per slot: the next game id it plays
    for slot in slots.0..slots.1 {
        next.push(slot);
    }
    let begin = |w: &mut Worker, slot: usize, id: usize, first_record: usize| -> Res<Game> {
        let episode = (id / opts.tries) as u64;
        check((e.t.reseed)(w.gh(), slot, slot + 1, mix(opts.seed, episode), &mut w.out), &w.out)?;
        match &opts.start_state {
            Some(state) => {
                check((e.t.set_state)(w.gh(), slot, state.as_ptr(), state.len(), &mut w.out), &w.out)?;
                w.refuse_ended(slot)?;
            }
            None => check((e.t.reset)(w.gh(), slot, slot + 1, &mut w.out), &w.out)?,
        }
        Ok(Game { id, slot, scratch0: slot * max_leaf, tree: Tree::new(Rule::Puct { c_puct: 1.5, fpu: 0.0 }),
                  rng: Rng::for_purpose(opts.seed, Purpose::Search, id as u64), sims: 0, searching: false, moves: 0, seats: seats_for(id),
                  returns: vec![0.0; e.players], movers: Vec::new(), step_rewards: Vec::new(), actions: Vec::new(),
                  root_mask: vec![0; e.actions], first_record })
    };
    for (k, slot) in (slots.0..slots.1).enumerate() {
        let id = next[k];
        if id < opts.num_games {
            let g = begin(&mut w, slot, id, 0)?;
            games.push(g);
            next[k] = id + num_slots;
        }
    }
    while !games.is_empty() {
        interrupted()?;
        // Searches for every game (random agents pick at once).
        let mut random_pick = vec![false; games.len()];
        for (k, game) in games.iter_mut().enumerate() {
            random_pick[k] = !w.start_search(game)?;
        }
        w.search_all(&mut games)?;
        // Moves.
        let mut finished = Vec::new();
        for (k, game) in games.iter_mut().enumerate() {
            let agent = w.agent_of(game);
            let try_index = game.id % opts.tries;
            let temperature = if try_index > 0 { opts.retry_temperature }
                              else if game.moves < opts.temp_moves { opts.temperature } else { 0.0 };
            let action = if random_pick[k] {
                let n = game.root_mask.iter().filter(|&&m| m != 0).count() as u64;
                let mut pick = game.rng.below(n);
                game.root_mask.iter().position(|&m| m != 0 && { let hit = pick == 0; pick = pick.wrapping_sub(1); hit })
                    .unwrap_or(0) as u32
            } else {
                game.tree.choose(temperature, &mut game.rng)
                    .ok_or_else(|| Fail::Msg("the search found no legal action".into()))?
            };
            if opts.record && agents[agent].policy.is_some() {
                record_move(&mut w, game, &mut records)?;
            }
            let player = game.tree.root().player;
            let mut scratch_mask = vec![0u8; e.actions];
            let (term, trunc, _) = w.step(w.gh(), game.slot, action as i64, scratch_mask.as_mut_ptr())?;
            game.movers.push(player);
            game.step_rewards.extend_from_slice(&w.rewards);
            for (r, x) in game.returns.iter_mut().zip(&w.rewards) {
                *r += x;
            }
            game.actions.push(action as i64);
            game.moves += 1;
            let capped = game.moves >= opts.max_moves;
            if term || trunc || capped {
                let (mut success, mut pl, mut steps, mut over) = (0u8, 0i64, 0i64, 0u8);
                check((e.t.status)(w.gh(), game.slot, game.slot + 1, &mut success, &mut pl, &mut steps, &mut over,
                                   &mut w.out), &w.out)?;
                finish_targets(game, &mut records, e.players);
                outcomes.push((game.id, Outcome { returns: game.returns.clone(), length: game.moves,
                                                  success: success != 0, truncated: !term,
                                                  actions: std::mem::take(&mut game.actions),
                                                  seats: game.seats.clone() }));
                finished.push(k);
            }
        }
        // Replace finished games with the slot's next game, if any.
        for &k in finished.iter().rev() {
            let slot = games[k].slot;
            let idx = slot - slots.0;
            let id = next[idx];
            if id < opts.num_games {
                games[k] = begin(&mut w, slot, id, records.game.len())?;
                next[idx] = id + num_slots;
            } else {
                games.swap_remove(k);
            }
        }
    }
    Ok((outcomes, records))
}

/// Save the root's observation, mask, visit distribution and player as a training row.
unsafe fn record_move(w: &mut Worker, game: &Game, r: &mut Records) -> Res<()> {
    let e = w.e;
    if e.sparse {
        let start = r.idx.len();
        r.idx.resize(start + e.nnz, 0);
        r.counts.push(0);
        let c = r.counts.len() - 1;
        check((e.t.observe_sparse)(w.gh(), game.slot, game.slot + 1, r.idx.as_mut_ptr().add(start),
                                   r.counts.as_mut_ptr().add(c), &mut w.out), &w.out)?;
    } else {
        let start = r.obs.len();
        r.obs.resize(start + e.obs, 0.0);
        check((e.t.observe)(w.gh(), game.slot, game.slot + 1, r.obs.as_mut_ptr().add(start), &mut w.out), &w.out)?;
    }
    r.masks.extend_from_slice(&game.root_mask);
    let start = r.policy.len();
    r.policy.resize(start + e.actions, 0.0);
    game.tree.root_visits(e.actions, &mut r.policy[start..]);
    let total: f32 = r.policy[start..].iter().sum();
    if total > 0.0 {
        r.policy[start..].iter_mut().for_each(|p| *p /= total);
    }
    r.game.push(game.id);
    r.value.push(0.0);
    r.player.push(game.tree.root().player as i64);
    r.mv.push(game.moves);
    Ok(())
}

/// Value targets of a finished game's rows: each row's return from its move to the end,
/// for the player who was to move (the outcome in a two-player game).
fn finish_targets(game: &Game, r: &mut Records, players: usize) {
    let moves = game.movers.len();
    let mut to_go = vec![0.0f64; players];
    let mut per_move = vec![vec![0.0f64; players]; moves];
    for m in (0..moves).rev() {
        for p in 0..players {
            to_go[p] += game.step_rewards[m * players + p];
        }
        per_move[m].copy_from_slice(&to_go);
    }
    for row in game.first_record..r.game.len() {
        if r.game[row] == game.id {
            let p = (r.player[row] as usize).min(players - 1);
            r.value[row] = per_move[r.mv[row].min(moves - 1)][p] as f32;
        }
    }
}

fn envs_of(games: &Batch, scratch: &Batch) -> PyResult<Envs> {
    let t = games.table();
    if !std::ptr::eq(t, scratch.table()) {
        return Err(PyValueError::new_err("the games and scratch batches must come from the same env plugin"));
    }
    if t.continuous != 0 {
        return Err(PyValueError::new_err("MCTS needs discrete actions; this env has continuous ones"));
    }
    if games.handle_addr() == scratch.handle_addr() {
        return Err(PyValueError::new_err("the scratch batch must be another batch than the games (the search \
                                          overwrites its envs)"));
    }
    let (_, actions, obs, nnz, state_len) = games.sizes_tuple();
    Ok(Envs { t, games: games.handle_addr(), scratch: scratch.handle_addr(), players: t.players.max(1) as usize,
              actions, obs, nnz, sparse: t.observation == 0, state_len })
}

fn is_permutation(p: &[u32], n: usize) -> bool {
    let mut seen = vec![false; n];
    p.len() == n && p.iter().all(|&x| (x as usize) < n && !std::mem::replace(&mut seen[x as usize], true))
}

fn check_agents(e: &Envs, agents: &[Agent]) -> PyResult<()> {
    for a in agents {
        if a.twists.iter().any(|t| !is_permutation(&t.obs, e.obs) || !is_permutation(&t.act, e.actions)) {
            return Err(PyValueError::new_err(format!(
                "each twist must be a permutation of the {} observation features and of the {} actions",
                e.obs, e.actions)));
        }
        if let Some(p) = &a.policy {
            if p.inputs != e.obs || p.num_actions != e.actions {
                return Err(PyValueError::new_err(format!(
                    "the policy maps {} features to {} actions, but the env has {} features and {} actions",
                    p.inputs, p.num_actions, e.obs, e.actions)));
            }
        }
    }
    Ok(())
}

/// Run `f` with the GIL released, turning a panic into an error instead of an abort.
fn guarded<T: Send>(py: Python<'_>, f: impl FnOnce() -> Res<T> + Send) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(fail)) => Err(to_py(fail)),
        Err(_) => Err(PyValueError::new_err("the search panicked (a bug in twisterl; please report it)")),
    }
}

/// Play games with search on every move, in parallel over `games`' threads.
///
/// `agents`: dicts (see `twisterl.mcts`); with several, seats rotate with the game number.
/// `scratch` needs `num_slots(games) * max(leaf_batch)` envs of the same plugin and params.
/// Returns a dict: per game `returns [G, players]`, `lengths`, `success`, `truncated`,
/// `seats [G, players]` (the agent of each player), `actions` (list of lists); with
/// `record`, training rows `obs`/`obs_indices`/`obs_counts`, `masks`, `policy`, `value`,
/// `player`, `game`.
#[pyfunction]
#[pyo3(signature = (games, scratch, agents, num_games, seed, temperature=1.0, temp_moves=0, record=false,
                    max_moves=100_000, tries=1, retry_temperature=1.0, start_state=None))]
#[allow(clippy::too_many_arguments)]
pub fn play<'py>(py: Python<'py>, games: &Batch, scratch: &Batch, agents: &Bound<'py, PyList>, num_games: usize,
                 seed: u64, temperature: f32, temp_moves: usize, record: bool, max_moves: usize, tries: usize,
                 retry_temperature: f32, start_state: Option<Vec<f64>>) -> PyResult<Bound<'py, PyDict>> {
    let _held = Batch::enter_pair(py, games, scratch)?;
    let e = envs_of(games, scratch)?;
    let agents: Vec<Agent> = agents.iter().map(|d| {
        let d = d.cast::<PyDict>().map_err(|_| PyValueError::new_err("each agent is a dict of search options"))?;
        Agent::from_dict(d)
    }).collect::<PyResult<_>>()?;
    if agents.is_empty() {
        return Err(PyValueError::new_err("give at least one agent"));
    }
    if agents.len() > 1 && agents.len() != e.players {
        return Err(PyValueError::new_err(format!("give one agent, or one per player ({})", e.players)));
    }
    check_agents(&e, &agents)?;
    if tries < 1 || max_moves < 1 {
        return Err(PyValueError::new_err("tries and max_moves must be at least 1"));
    }
    if let Some(s) = &start_state {
        if s.len() != e.state_len {
            return Err(PyValueError::new_err(format!("a state of {} values was given, but {} are needed",
                                                     s.len(), e.state_len)));
        }
    }
    let max_leaf = agents.iter().map(|a| a.leaf_batch).max().unwrap_or(1);
    let (num_slots, ..) = games.sizes_tuple();
    let (scratch_n, ..) = scratch.sizes_tuple();
    if scratch_n < num_slots * max_leaf {
        return Err(PyValueError::new_err(format!(
            "the scratch batch needs {} envs ({num_slots} games x leaf_batch {max_leaf}), not {scratch_n}",
            num_slots * max_leaf)));
    }
    let opts = Options { num_games: num_games * tries, tries, seed, temperature, temp_moves, retry_temperature, record,
                         max_moves, start_state };
    let ranges = games.ranges(0, num_slots);
    let agents_ref = &agents;
    let opts_ref = &opts;
    let results = guarded(py, || {
        let body = |&(s, t): &(usize, usize)| unsafe {
            play_range(e, agents_ref, opts_ref, max_leaf, (s, t), num_slots)
        };
        let parts: Vec<Res<(Vec<(usize, Outcome)>, Records)>> = match games.pool() {
            Some(pool) => pool.install(|| ranges.par_iter().map(body).collect()),
            None => ranges.iter().map(body).collect(),
        };
        parts.into_iter().collect::<Res<Vec<_>>>()
    })?;
    let g = opts.num_games;
    let mut outcomes = vec![Outcome::default(); g];
    let mut rows: Vec<(usize, usize, usize)> = Vec::new(); // (game, part, row)
    for (k, (outs, recs)) in results.iter().enumerate() {
        for (id, o) in outs {
            outcomes[*id] = o.clone();
        }
        for (row, &gid) in recs.game.iter().enumerate() {
            rows.push((gid, k, row));
        }
    }
    rows.sort_by_key(|&(gid, k, row)| (gid, k, row));
    let d = PyDict::new(py);
    let players = e.players;
    let returns = PyArray2::<f64>::zeros(py, [g, players], false);
    let seats = PyArray2::<i64>::zeros(py, [g, players], false);
    let lengths = PyArray1::<i64>::zeros(py, g, false);
    let success = PyArray1::<bool>::zeros(py, g, false);
    let truncated = PyArray1::<bool>::zeros(py, g, false);
    unsafe {
        let (r, s, l, su, tr) = (returns.as_slice_mut()?, seats.as_slice_mut()?, lengths.as_slice_mut()?,
                                 success.as_slice_mut()?, truncated.as_slice_mut()?);
        for (i, o) in outcomes.iter().enumerate() {
            for p in 0..players {
                r[i * players + p] = o.returns.get(p).copied().unwrap_or(0.0);
                s[i * players + p] = o.seats.get(p).copied().unwrap_or(0) as i64;
            }
            l[i] = o.length as i64;
            su[i] = o.success;
            tr[i] = o.truncated;
        }
    }
    let actions = PyList::empty(py);
    for o in &outcomes {
        actions.append(o.actions.clone())?;
    }
    d.set_item("returns", returns)?;
    d.set_item("seats", seats)?;
    d.set_item("lengths", lengths)?;
    d.set_item("success", success)?;
    d.set_item("truncated", truncated)?;
    d.set_item("actions", actions)?;
    if record {
        let n = rows.len();
        let (a, o, z) = (e.actions, if e.sparse { 0 } else { e.obs }, if e.sparse { e.nnz } else { 0 });
        let obs = PyArray2::<f32>::zeros(py, [n, o], false);
        let idx = PyArray2::<u32>::zeros(py, [n, z], false);
        let counts = PyArray1::<u32>::zeros(py, n, false);
        let masks = PyArray2::<bool>::zeros(py, [n, a], false);
        let policy = PyArray2::<f32>::zeros(py, [n, a], false);
        let value = PyArray1::<f32>::zeros(py, n, false);
        let player = PyArray1::<i64>::zeros(py, n, false);
        let game = PyArray1::<i64>::zeros(py, n, false);
        unsafe {
            let (ob, ix, ct, mk, po, va, pl, ga) = (obs.as_slice_mut()?, idx.as_slice_mut()?, counts.as_slice_mut()?,
                masks.as_slice_mut()?, policy.as_slice_mut()?, value.as_slice_mut()?, player.as_slice_mut()?,
                game.as_slice_mut()?);
            for (i, &(gid, k, row)) in rows.iter().enumerate() {
                let r = &results[k].1;
                if e.sparse {
                    ix[i * z..(i + 1) * z].copy_from_slice(&r.idx[row * z..(row + 1) * z]);
                    ct[i] = r.counts[row];
                } else {
                    ob[i * o..(i + 1) * o].copy_from_slice(&r.obs[row * o..(row + 1) * o]);
                }
                for j in 0..a {
                    mk[i * a + j] = r.masks[row * a + j] != 0;
                }
                po[i * a..(i + 1) * a].copy_from_slice(&r.policy[row * a..(row + 1) * a]);
                va[i] = r.value[row];
                pl[i] = r.player[row];
                ga[i] = gid as i64;
            }
        }
        d.set_item("obs", obs)?;
        d.set_item("obs_indices", idx)?;
        d.set_item("obs_counts", counts)?;
        d.set_item("masks", masks)?;
        d.set_item("policy", policy)?;
        d.set_item("value", value)?;
        d.set_item("player", player)?;
        d.set_item("game", game)?;
    }
    Ok(d)
}

/// One search from env `slot` of `games` with `agent`. Returns (visits [A], value for the
/// player to move, best action, priors [A], q [A] for the player to move (NaN unvisited)).
#[pyfunction]
#[pyo3(signature = (games, slot, scratch, agent, seed))]
#[allow(clippy::type_complexity)]
pub fn search<'py>(py: Python<'py>, games: &Batch, slot: usize, scratch: &Batch, agent: &Bound<'py, PyDict>,
                   seed: u64) -> PyResult<(Bound<'py, PyArray1<f32>>, f64, i64, Bound<'py, PyArray1<f32>>,
                                          Bound<'py, PyArray1<f32>>)> {
    let _held = Batch::enter_pair(py, games, scratch)?;
    let e = envs_of(games, scratch)?;
    let agents = vec![Agent::from_dict(agent)?];
    if agents[0].random {
        return Err(PyValueError::new_err("a \"random\" agent does not search"));
    }
    check_agents(&e, &agents)?;
    let (n, ..) = games.sizes_tuple();
    if slot >= n {
        return Err(PyValueError::new_err(format!("env {slot} is outside 0..{n}")));
    }
    let leaf = agents[0].leaf_batch;
    let (scratch_n, ..) = scratch.sizes_tuple();
    if scratch_n < leaf {
        return Err(PyValueError::new_err(format!("the scratch batch needs {leaf} envs, not {scratch_n}")));
    }
    let agents_ref = &agents;
    let tree = guarded(py, || unsafe {
        let mut w = Worker::new(e, agents_ref);
        w.refuse_ended(slot)?;
        let game = Game { id: 0, slot, scratch0: 0, tree: Tree::new(agents_ref[0].rule), rng: Rng::for_purpose(seed, Purpose::Search, 0),
                          sims: 0, searching: false, moves: 0, seats: vec![0; e.players], returns: vec![0.0; e.players],
                          movers: vec![], step_rewards: vec![], actions: vec![], root_mask: vec![0; e.actions],
                          first_record: 0 };
        let mut one = vec![game];
        w.start_search(&mut one[0])?;
        w.search_all(&mut one)?;
        Ok(one.pop().unwrap().tree)
    })?;
    let a = e.actions;
    let visits = PyArray1::<f32>::zeros(py, a, false);
    let priors = PyArray1::<f32>::zeros(py, a, false);
    let q = PyArray1::<f32>::from_vec(py, vec![f32::NAN; a]);
    unsafe {
        tree.root_visits(a, visits.as_slice_mut()?);
        let (p, qs) = (priors.as_slice_mut()?, q.as_slice_mut()?);
        for c in tree.children(0) {
            p[c.action as usize] = c.prior;
            if let Some(v) = c.q() {
                qs[c.action as usize] = v as f32;
            }
        }
    }
    let mut rng = Rng::new(seed, 1);
    let best = tree.choose(0.0, &mut rng).map(|x| x as i64).unwrap_or(-1);
    Ok((visits, tree.root_value().unwrap_or(0.0), best, priors, q))
}
