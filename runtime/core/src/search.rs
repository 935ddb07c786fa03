//! Monte Carlo tree search over the envs of a [`Host`]: AlphaZero self-play, arenas, puzzle
//! solving ([`play`]) and single searches ([`search`]). The tree is [`crate::mcts::Tree`].
//!
//! How a simulation reaches a leaf. The search never snapshots states: each simulation
//! copies the root env into a scratch env ([`Host::copy_into`]), gives the copy a fresh
//! random stream ([`Host::reseed_rng`], drawn from the game's search stream) and replays
//! the path's actions. So chance is sampled anew in every simulation, never read from the
//! root's own future draws: the search is open-loop, a node's statistics average over the
//! dice, and each simulation backs up the rewards, turns and ending its own replay saw (a
//! replay that ends early, or finds a later action illegal after other dice, stops there).
//! Deterministic envs draw nothing in steps, so their tree is exact. Results depend only on
//! the root state and the seed, on every host.
//!
//! Batched leaf evaluation. Games run in lockstep rounds: every game whose search is
//! unfinished selects up to `leaf_batch` leaves (virtual loss keeps them apart); all the
//! leaves that need the network are observed into one matrix and evaluated in one forward
//! pass (once per twist, averaged, with twists); then they are expanded and backed up. A
//! random-rollout evaluator (pure MCTS) evaluates each leaf at once by one random playout.
//!
//! Games. Game `j` runs on games env `j % num_slots` (so results do not depend on how the
//! games are split between threads), with scratch envs `slot * leaf_batch ..`; its RNG is
//! stream `j` of the seed, and its env is reseeded from the seed and `j / tries` before its
//! reset (tries of one episode start from the same state).

use crate::host::{poll, Error, Host, Layout, StatusInto};
use crate::mcts::{masked_softmax, Rule, Step, Tree};
use crate::policy::{Input, Policy, Workspace};
use crate::rng::{Purpose, Rng};
use crate::twist::Twist;

/// How an agent picks its moves.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// AlphaZero's PUCT on a network's priors and values.
    Net,
    /// Pure MCTS: UCT with one random playout per leaf.
    Rollout,
    /// Uniformly random legal moves, no search.
    Random,
}

/// An agent's search settings, before they are checked against an env. Plain C data: a
/// plugin is handed them to run a search inside (`abi::PluginV1::search`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgentOptions {
    pub kind: Kind,
    pub simulations: usize,
    pub c_puct: f32,
    pub uct_c: f32,
    /// The value of unvisited children under PUCT.
    pub fpu: f32,
    /// Leaves evaluated per forward pass (virtual loss keeps them apart).
    pub leaf_batch: usize,
    pub dirichlet_alpha: f32,
    /// How much Dirichlet noise is mixed into the root's priors (0: none).
    pub dirichlet_frac: f32,
    /// The most steps of one random playout.
    pub rollout_limit: usize,
}

impl Default for AgentOptions {
    fn default() -> AgentOptions {
        AgentOptions {
            kind: Kind::Net,
            simulations: 100,
            c_puct: 1.5,
            uct_c: 2.0,
            fpu: 0.0,
            leaf_batch: 1,
            dirichlet_alpha: 0.3,
            dirichlet_frac: 0.0,
            rollout_limit: 100_000,
        }
    }
}

/// A player: a search (with a network or random rollouts) or uniformly random moves.
#[derive(Clone, Debug)]
pub struct Agent {
    pub options: AgentOptions,
    pub policy: Option<Policy>,
    rule: Rule,
    /// Network leaves are evaluated under each of these symmetries and averaged.
    twists: Vec<Twist>,
}

impl Agent {
    /// An agent for envs of `layout`; a `Net` agent needs `policy`. `twists` are (observation
    /// permutation, action permutation) pairs, identity included if wanted.
    pub fn new(
        options: AgentOptions, policy: Option<Policy>, twists: Vec<(Vec<u32>, Vec<u32>)>, layout: &Layout,
    ) -> Result<Agent, String> {
        let o = options;
        if layout.continuous {
            return Err("MCTS needs discrete actions; this env has continuous ones".into());
        }
        if o.kind != Kind::Random && o.simulations < 1 {
            return Err("simulations must be at least 1".into());
        }
        if o.leaf_batch < 1 {
            return Err("leaf_batch must be at least 1".into());
        }
        if !(o.dirichlet_alpha > 0.0)
            || !(0.0..=1.0).contains(&o.dirichlet_frac)
            || !o.c_puct.is_finite()
            || !o.uct_c.is_finite()
        {
            return Err("dirichlet_alpha must be positive, dirichlet_frac in [0, 1], c_puct and uct_c finite".into());
        }
        let policy = match (o.kind, policy) {
            (Kind::Net, None) => return Err("a \"net\" agent needs a policy".into()),
            (Kind::Net, Some(p)) => {
                if p.inputs != layout.obs_size || p.num_actions != layout.num_actions {
                    return Err(format!(
                        "the policy maps {} features to {} actions, but the env has {} features and \
                                        {} actions",
                        p.inputs, p.num_actions, layout.obs_size, layout.num_actions
                    ));
                }
                Some(p)
            }
            _ => None,
        };
        let twists = twists
            .into_iter()
            .map(|(obs, act)| Twist::new(obs, act, layout.obs_size, layout.num_actions))
            .collect::<Result<Vec<_>, _>>()?;
        let rule = match o.kind {
            Kind::Net => Rule::Puct { c_puct: o.c_puct, fpu: o.fpu },
            Kind::Rollout | Kind::Random => Rule::Uct { c: o.uct_c },
        };
        Ok(Agent { options: o, policy, rule, twists })
    }

    fn random(&self) -> bool {
        self.options.kind == Kind::Random
    }
}

/// How games are played.
#[derive(Clone, Debug, PartialEq)]
pub struct PlayOptions {
    /// Games in all, tries included.
    pub num_games: usize,
    /// Each game is tried this many times from the same start (puzzles).
    pub tries: usize,
    pub seed: u64,
    /// Moves are drawn from the visit counts at this temperature for the first `temp_moves` moves.
    pub temperature: f32,
    pub temp_moves: usize,
    /// The temperature of every move of a game's tries after the first.
    pub retry_temperature: f32,
    /// Save a training row (observation, mask, visit distribution, value target) per move.
    pub record: bool,
    pub max_moves: usize,
    /// Start every game from this state instead of a reset.
    pub start_state: Option<Vec<f64>>,
}

/// The outcome of one game.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub returns: Vec<f64>,
    pub length: usize,
    pub success: bool,
    pub truncated: bool,
    pub actions: Vec<i64>,
    /// The agent of each player.
    pub seats: Vec<usize>,
}

/// Training rows, one per recorded move. Observations are in `obs` (dense) or
/// `indices`/`counts` (sparse); `policy` is the root's normalised visit distribution and
/// `value` the return from that move on for the player to move.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Records {
    pub game: Vec<usize>,
    pub obs: Vec<f32>,
    pub indices: Vec<u32>,
    pub counts: Vec<u32>,
    pub masks: Vec<bool>,
    pub policy: Vec<f32>,
    pub value: Vec<f32>,
    pub player: Vec<i64>,
    /// The move number of the row in its game.
    pub mv: Vec<usize>,
}

impl Records {
    pub fn len(&self) -> usize {
        self.game.len()
    }

    pub fn is_empty(&self) -> bool {
        self.game.is_empty()
    }
}

/// What [`play`] did on one range of games envs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Played {
    /// (game number, outcome), in the order the games ended.
    pub outcomes: Vec<(usize, Outcome)>,
    pub records: Records,
}

/// What one search found at its root, one entry per action.
#[derive(Clone, Debug, PartialEq)]
pub struct Searched {
    pub visits: Vec<f32>,
    /// The root's value for the player to move.
    pub value: f64,
    /// The most visited action.
    pub best: Option<u32>,
    pub priors: Vec<f32>,
    /// Each action's mean value for the player to move (NaN if unvisited).
    pub q: Vec<f32>,
}

/// One game in progress on a games env.
struct Game {
    id: usize,
    slot: usize,
    /// The first of this game's `leaf_batch` scratch envs.
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
    root_mask: Vec<bool>,
    first_record: usize,
}

impl Game {
    fn new(
        id: usize, slot: usize, scratch0: usize, rng: Rng, seats: Vec<usize>, layout: &Layout, first_record: usize,
    ) -> Game {
        Game {
            id,
            slot,
            scratch0,
            tree: Tree::new(Rule::Puct { c_puct: 1.5, fpu: 0.0 }),
            rng,
            sims: 0,
            searching: false,
            moves: 0,
            seats,
            returns: vec![0.0; layout.players],
            movers: Vec::new(),
            step_rewards: Vec::new(),
            actions: Vec::new(),
            root_mask: vec![false; layout.num_actions],
            first_record,
        }
    }
}

/// A leaf waiting for the network.
struct Pending {
    game: usize,
    scratch: usize,
    path: Vec<u32>,
    /// What this simulation's replay said along `path`.
    steps: Vec<Step>,
    mask: Vec<bool>,
}

fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn nothing_to_search(why: &str) -> Error {
    Error::Invalid(format!("{why} in this state: there is nothing to search"))
}

/// One step of env `i` of `host`: rewards into `rewards`, the new mask into `mask`;
/// returns (terminated, truncated, player to move).
#[inline]
fn step_env<H: Host>(
    host: &mut H, i: usize, action: i64, rewards: &mut [f64], mask: &mut [bool],
) -> Result<(bool, bool, u32), Error> {
    host.step_one(i, action, rewards, mask)
}

/// The status of env `i`: (success, player to move, episode over).
fn status_of<H: Host>(host: &H, i: usize) -> Result<(bool, u32, bool), Error> {
    let (mut success, mut player, mut steps, mut over) = ([false], [0i64], [0i64], [false]);
    host.status(
        i..i + 1,
        StatusInto { success: &mut success, player: &mut player, steps: &mut steps, over: &mut over },
    )?;
    Ok((success[0], player[0] as u32, over[0]))
}

/// The search state shared by a range's games: the hosts, the agents and buffers.
struct Worker<'a, H: Host> {
    games: &'a mut H,
    scratch: &'a mut H,
    layout: Layout,
    agents: &'a [Agent],
    ws: Workspace,
    rewards: Vec<f64>,
    path: Vec<u32>,
    /// What the last replay said along `path`.
    steps: Vec<Step>,
    mask: Vec<bool>,
    /// A rollout leaf's mask, kept while the rollout steps on, and uniform priors.
    leaf_mask: Vec<bool>,
    uniform: Vec<f32>,
    probs: Vec<f32>,
    logits: Vec<f32>,
    values: Vec<f32>,
    obs: Vec<f32>,
    idx: Vec<u32>,
    counts: Vec<u32>,
    /// One untwisted observation, one twisted mask, averaged priors.
    raw: Vec<f32>,
    twisted: Vec<bool>,
    avg: Vec<f32>,
}

impl<'a, H: Host> Worker<'a, H> {
    fn new(games: &'a mut H, scratch: &'a mut H, agents: &'a [Agent]) -> Worker<'a, H> {
        let layout = games.layout();
        let a = layout.num_actions;
        Worker {
            games,
            scratch,
            layout,
            agents,
            ws: Workspace::default(),
            rewards: vec![0.0; layout.players],
            path: Vec::new(),
            steps: Vec::new(),
            mask: vec![false; a],
            leaf_mask: vec![false; a],
            uniform: vec![1.0; a],
            probs: vec![0.0; a],
            logits: Vec::new(),
            values: Vec::new(),
            obs: Vec::new(),
            idx: Vec::new(),
            counts: Vec::new(),
            raw: vec![0.0; layout.obs_size],
            twisted: vec![false; a],
            avg: vec![0.0; a],
        }
    }

    /// An error if games env `slot` is in a state where the episode is over.
    fn refuse_ended(&self, slot: usize) -> Result<(), Error> {
        if self.games.ends_here(slot)? {
            return Err(nothing_to_search("the episode is over"));
        }
        Ok(())
    }

    /// Copy the root (games env `slot`) into scratch env `s`, give the copy a fresh random
    /// stream from `chance`, and replay `path`. What the env says at each node goes into
    /// `self.steps` (and the nodes); the leaf's mask is left in `self.mask` (unless the
    /// leaf is terminal). Chance can end the episode early or make a later action illegal
    /// on this replay: the path is then cut where this replay stopped (its remaining
    /// pending visits cancelled).
    fn replay(
        &mut self, tree: &mut Tree, root_mask: &[bool], slot: usize, s: usize, path: &mut Vec<u32>, chance: u64,
    ) -> Result<(), Error> {
        self.games.copy_into(slot, self.scratch, s)?;
        self.scratch.reseed_rng(s, chance)?;
        self.mask.copy_from_slice(root_mask); // the root is the same state every time
        self.steps.clear();
        self.steps.push(Step { reward: 0.0, player: tree.nodes[0].player, terminal: false });
        // Whether `self.mask` is the current state's: the root's is; after a step only the
        // path's next action is tested, and the leaf's mask is made once, at the end.
        let mut known = true;
        for k in 1..path.len() {
            let action = tree.nodes[path[k] as usize].action as usize;
            let legal = match known {
                true => self.mask.get(action).copied().unwrap_or(false),
                false => self.scratch.allowed(s, action, &mut self.mask)?,
            };
            if !legal {
                tree.cancel(&path[k..]);
                path.truncate(k);
                break;
            }
            let (term, trunc, player) = self.scratch.step_legal(s, action as i64, &mut self.rewards)?;
            known = false;
            let mover = self.steps[k - 1].player as usize;
            let step = Step {
                reward: self.rewards[mover.min(self.layout.players - 1)] as f32,
                player,
                terminal: term || trunc,
            };
            tree.reach(path[k], step.reward, step.terminal, player);
            self.steps.push(step);
            if step.terminal {
                if k + 1 < path.len() {
                    tree.cancel(&path[k + 1..]);
                    path.truncate(k + 1);
                }
                return Ok(()); // nothing is played from a terminal leaf: no mask needed
            }
        }
        if !known {
            self.scratch.mask_into(s, &mut self.mask)?;
        }
        Ok(())
    }

    /// A random playout from scratch env `s` (its mask in `self.mask`): the sum of the
    /// rewards of player `player` until the episode ends or `limit` steps.
    fn rollout(&mut self, s: usize, player: u32, rng: &mut Rng, limit: usize) -> Result<f64, Error> {
        self.scratch.rollout(s, player, limit, rng, &mut self.mask, &mut self.rewards)
    }

    /// Select up to `leaf_batch` leaves of game `g`'s tree: terminal ones and rollouts
    /// are backed up at once, network leaves are queued in `pending`.
    fn gather(&mut self, games: &mut [Game], g: usize, agent: usize, pending: &mut Vec<Pending>) -> Result<(), Error> {
        let agents = self.agents;
        let a = &agents[agent];
        let want = a.options.leaf_batch.min(a.options.simulations - games[g].sims);
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
            let chance = game.rng.next_u64();
            self.replay(&mut game.tree, &game.root_mask, game.slot, s, &mut path, chance)?;
            let leaf = *path.last().unwrap();
            let mut steps = std::mem::take(&mut self.steps);
            let here = *steps.last().unwrap();
            let legal = self.mask.iter().any(|&m| m);
            if here.terminal || !legal {
                if !here.terminal {
                    game.tree.reach(leaf, here.reward, true, here.player); // a dead end
                    steps.last_mut().unwrap().terminal = true;
                }
                game.tree.backup_sampled(&path, &steps, 0.0);
                game.sims += 1;
            } else if a.policy.is_some() {
                pending.push(Pending {
                    game: g,
                    scratch: s,
                    path: path.clone(),
                    steps: steps.clone(),
                    mask: self.mask.clone(),
                });
            } else {
                self.leaf_mask.copy_from_slice(&self.mask); // the rollout steps on from here
                let mut rng = std::mem::replace(&mut game.rng, Rng::new(0, 0));
                let v = self.rollout(s, here.player, &mut rng, a.options.rollout_limit);
                let game = &mut games[g];
                game.rng = rng;
                let v = v?;
                game.tree.expand(leaf, &self.leaf_mask, &self.uniform);
                if leaf == 0 {
                    game.tree.add_root_noise(a.options.dirichlet_alpha, a.options.dirichlet_frac, &mut game.rng);
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
    fn evaluate(&mut self, games: &mut [Game], agent: usize, pending: &mut Vec<Pending>) -> Result<(), Error> {
        if pending.is_empty() {
            return Ok(());
        }
        let agents = self.agents;
        let a = &agents[agent];
        let policy = a.policy.as_ref().expect("network leaves come from network agents");
        let n = pending.len();
        let e = self.layout;
        let na = e.num_actions;
        // With twists, each leaf is evaluated once per twist (rows `k * views + t`) and the
        // priors and values are averaged back in the leaf's own frame.
        let views = a.twists.len().max(1);
        let rows = n * views;
        if e.sparse() {
            let nnz = e.nnz_max;
            self.idx.resize(rows * nnz, 0);
            self.counts.resize(rows, 0);
            for (k, p) in pending.iter().enumerate() {
                let r = k * views;
                self.scratch.observe_sparse(
                    p.scratch..p.scratch + 1,
                    &mut self.idx[r * nnz..(r + 1) * nnz],
                    &mut self.counts[r..r + 1],
                )?;
                let c = self.counts[r] as usize;
                for (t, tw) in a.twists.iter().enumerate().skip(1) {
                    self.counts[r + t] = c as u32;
                    for j in 0..c {
                        self.idx[(r + t) * nnz + j] = tw.obs[self.idx[r * nnz + j] as usize];
                    }
                }
                if let Some(tw) = a.twists.first() {
                    tw.sparse(&mut self.idx[r * nnz..r * nnz + c]);
                }
            }
        } else {
            let width = e.obs_size;
            self.obs.resize(rows * width, 0.0);
            for (k, p) in pending.iter().enumerate() {
                let r = k * views;
                self.scratch.observe(p.scratch..p.scratch + 1, &mut self.obs[r * width..(r + 1) * width])?;
                if !a.twists.is_empty() {
                    self.raw.copy_from_slice(&self.obs[r * width..(r + 1) * width]);
                    for (t, tw) in a.twists.iter().enumerate() {
                        tw.dense(&self.raw, &mut self.obs[(r + t) * width..(r + t + 1) * width]);
                    }
                }
            }
        }
        self.logits.resize(rows * na, 0.0);
        self.values.resize(rows, 0.0);
        let input = if e.sparse() {
            Input::Sparse { indices: &self.idx, counts: &self.counts, stride: e.nnz_max }
        } else {
            Input::Dense { x: &self.obs, width: e.obs_size }
        };
        policy.forward(input, rows, &mut self.logits, &mut self.values, &mut self.ws);
        for (k, p) in pending.drain(..).enumerate() {
            let legal = &p.mask;
            let mut v = 0.0f64;
            if a.twists.is_empty() {
                masked_softmax(&self.logits[k * na..(k + 1) * na], legal, &mut self.probs);
                v = self.values[k] as f64;
            } else {
                self.avg.iter_mut().for_each(|x| *x = 0.0);
                for (t, tw) in a.twists.iter().enumerate() {
                    let r = k * views + t;
                    tw.mask(legal, &mut self.twisted);
                    masked_softmax(&self.logits[r * na..(r + 1) * na], &self.twisted, &mut self.probs);
                    for act in 0..na {
                        self.avg[act] += self.probs[tw.act[act] as usize] / views as f32;
                    }
                    v += self.values[r] as f64 / views as f64;
                }
                self.probs.copy_from_slice(&self.avg);
            }
            let game = &mut games[p.game];
            let leaf = *p.path.last().unwrap();
            game.tree.expand(leaf, legal, &self.probs);
            if leaf == 0 {
                game.tree.add_root_noise(a.options.dirichlet_alpha, a.options.dirichlet_frac, &mut game.rng);
            }
            game.tree.backup_sampled(&p.path, &p.steps, if v.is_finite() { v } else { 0.0 });
            game.sims += 1;
        }
        Ok(())
    }

    /// Run lockstep rounds until every game in `games` with `searching` set has finished
    /// its search.
    fn search_all(&mut self, games: &mut [Game]) -> Result<(), Error> {
        let mut pending: Vec<Vec<Pending>> = (0..self.agents.len()).map(|_| Vec::new()).collect();
        loop {
            poll()?;
            let mut any = false;
            for g in 0..games.len() {
                if !games[g].searching {
                    continue;
                }
                let agent = self.agent_of(&games[g]);
                if games[g].sims >= self.agents[agent].options.simulations {
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

    /// Prepare `game`'s tree for a search from its games env; `false` for a random agent,
    /// which does not search.
    fn start_search(&mut self, game: &mut Game) -> Result<bool, Error> {
        game.tree.clear();
        game.sims = 0;
        let (_, player, over) = status_of(self.games, game.slot)?;
        self.games.masks(game.slot..game.slot + 1, &mut game.root_mask)?;
        if over {
            return Err(nothing_to_search("the episode is over"));
        }
        if !game.root_mask.iter().any(|&m| m) {
            return Err(nothing_to_search("no action is legal"));
        }
        game.tree.nodes[0].player = player;
        let agent = self.agent_of(game);
        if self.agents.get(agent).is_some_and(Agent::random) {
            return Ok(false);
        }
        game.tree.rule = self.agents[agent].rule;
        game.searching = true;
        Ok(true)
    }

    /// Save the root's observation, mask, visit distribution and player as a training row.
    fn record_move(&mut self, game: &Game, r: &mut Records) -> Result<(), Error> {
        let e = self.layout;
        let slot = game.slot..game.slot + 1;
        if e.sparse() {
            let start = r.indices.len();
            r.indices.resize(start + e.nnz_max, 0);
            r.counts.push(0);
            let c = r.counts.len() - 1;
            self.games.observe_sparse(slot, &mut r.indices[start..], &mut r.counts[c..])?;
        } else {
            let start = r.obs.len();
            r.obs.resize(start + e.obs_size, 0.0);
            r.counts.push(0);
            self.games.observe(slot, &mut r.obs[start..])?;
        }
        r.masks.extend_from_slice(&game.root_mask);
        let start = r.policy.len();
        r.policy.resize(start + e.num_actions, 0.0);
        game.tree.root_visits(e.num_actions, &mut r.policy[start..]);
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

/// Whether `agents` can play games of `opts` on `num_slots` games envs of `layout` with
/// `scratch_len` scratch envs; the error says why not.
pub fn check_play(
    agents: &[Agent], opts: &PlayOptions, layout: &Layout, num_slots: usize, scratch_len: usize,
) -> Result<(), Error> {
    let invalid = |m: String| Err(Error::Invalid(m));
    if agents.is_empty() {
        return invalid("give at least one agent".into());
    }
    if agents.len() > 1 && agents.len() != layout.players {
        return invalid(format!("give one agent, or one per player ({})", layout.players));
    }
    if opts.tries < 1 || opts.max_moves < 1 {
        return invalid("tries and max_moves must be at least 1".into());
    }
    if let Some(s) = &opts.start_state {
        if s.len() != layout.state_len {
            return invalid(format!("a state of {} values was given, but {} are needed", s.len(), layout.state_len));
        }
    }
    let needed = scratch_range(0..num_slots, agents).end;
    if scratch_len < needed {
        let leaf = needed / num_slots.max(1);
        return invalid(format!(
            "the scratch batch needs {needed} envs ({num_slots} games x leaf_batch {leaf}), not \
                                {scratch_len}"
        ));
    }
    Ok(())
}

/// The scratch envs [`play`] needs for games envs `games` (`leaf_batch` each, for the
/// largest `leaf_batch` of `agents`).
pub fn scratch_range(games: std::ops::Range<usize>, agents: &[Agent]) -> std::ops::Range<usize> {
    let leaf = agents.iter().map(|a| a.options.leaf_batch).max().unwrap_or(1);
    games.start * leaf..games.end * leaf
}

/// Play the games of `games`' envs (game `j` on env `j % num_slots`, for the envs of this
/// host) with `agents`: one for every seat, or one per player in seat order for game 0,
/// seats rotating with the game number so that each agent plays each side. `scratch`
/// must hold [`scratch_range`] of the games envs.
pub fn play<H: Host>(
    games: &mut H, scratch: &mut H, agents: &[Agent], opts: &PlayOptions, num_slots: usize,
) -> Result<Played, Error> {
    let layout = games.layout();
    let slots = games.envs();
    let max_leaf = agents.iter().map(|a| a.options.leaf_batch).max().unwrap_or(1);
    let mut w = Worker::new(games, scratch, agents);
    let mut records = Records::default();
    let mut outcomes = Vec::new();
    let seats_for = |id: usize| -> Vec<usize> {
        (0..layout.players).map(|p| if agents.len() == 1 { 0 } else { (p + id) % agents.len() }).collect()
    };
    let begin = |w: &mut Worker<H>, slot: usize, id: usize, first_record: usize| -> Result<Game, Error> {
        let episode = (id / opts.tries) as u64;
        w.games.reseed(slot..slot + 1, mix(opts.seed, episode))?;
        match &opts.start_state {
            Some(state) => {
                w.games.set_state(slot, state)?;
                w.refuse_ended(slot)?;
            }
            None => w.games.reset(slot..slot + 1)?,
        }
        let rng = Rng::for_purpose(opts.seed, Purpose::Search, id as u64);
        Ok(Game::new(id, slot, slot * max_leaf, rng, seats_for(id), &layout, first_record))
    };
    let mut games: Vec<Game> = Vec::new();
    let mut next: Vec<usize> = slots.clone().collect(); // per slot: the next game it plays
    for (k, slot) in slots.clone().enumerate() {
        let id = next[k];
        if id < opts.num_games {
            games.push(begin(&mut w, slot, id, 0)?);
            next[k] = id + num_slots;
        }
    }
    let mut after_step = vec![false; layout.num_actions];
    while !games.is_empty() {
        poll()?;
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
            let temperature = if try_index > 0 {
                opts.retry_temperature
            } else if game.moves < opts.temp_moves {
                opts.temperature
            } else {
                0.0
            };
            let action = if random_pick[k] {
                let n = game.root_mask.iter().filter(|&&m| m).count() as u64;
                let mut pick = game.rng.below(n);
                game.root_mask
                    .iter()
                    .position(|&m| {
                        m && {
                            let hit = pick == 0;
                            pick = pick.wrapping_sub(1);
                            hit
                        }
                    })
                    .unwrap_or(0) as u32
            } else {
                game.tree
                    .choose(temperature, &mut game.rng)
                    .ok_or_else(|| Error::Invalid("the search found no legal action".into()))?
            };
            if opts.record && agents[agent].policy.is_some() {
                w.record_move(game, &mut records)?;
            }
            let player = game.tree.root().player;
            let (term, trunc, _) = step_env(w.games, game.slot, action as i64, &mut w.rewards, &mut after_step)?;
            game.movers.push(player);
            game.step_rewards.extend_from_slice(&w.rewards);
            for (r, x) in game.returns.iter_mut().zip(&w.rewards) {
                *r += x;
            }
            game.actions.push(action as i64);
            game.moves += 1;
            if term || trunc || game.moves >= opts.max_moves {
                let (success, _, _) = status_of(w.games, game.slot)?;
                finish_targets(game, &mut records, layout.players);
                outcomes.push((
                    game.id,
                    Outcome {
                        returns: game.returns.clone(),
                        length: game.moves,
                        success,
                        truncated: !term,
                        actions: std::mem::take(&mut game.actions),
                        seats: game.seats.clone(),
                    },
                ));
                finished.push(k);
            }
        }
        // Replace finished games with the slot's next game, if any.
        for &k in finished.iter().rev() {
            let slot = games[k].slot;
            let idx = slot - slots.start;
            let id = next[idx];
            if id < opts.num_games {
                games[k] = begin(&mut w, slot, id, records.len())?;
                next[idx] = id + num_slots;
            } else {
                games.swap_remove(k);
            }
        }
    }
    Ok(Played { outcomes, records })
}

/// The results of [`play`] on several ranges as one: outcomes by game number, and the
/// training rows ordered by game (then range, then row).
pub fn merge(parts: Vec<Played>, num_games: usize, layout: &Layout) -> (Vec<Outcome>, Records) {
    let mut outcomes = vec![Outcome::default(); num_games];
    let mut rows: Vec<(usize, usize, usize)> = Vec::new(); // (game, part, row)
    for (k, part) in parts.iter().enumerate() {
        for (id, o) in &part.outcomes {
            outcomes[*id] = o.clone();
        }
        for (row, &gid) in part.records.game.iter().enumerate() {
            rows.push((gid, k, row));
        }
    }
    rows.sort_unstable();
    let (a, o, z) = (layout.num_actions, layout.obs_size, layout.nnz_max);
    let mut out = Records::default();
    for (gid, k, row) in rows {
        let r = &parts[k].records;
        if layout.sparse() {
            out.indices.extend_from_slice(&r.indices[row * z..(row + 1) * z]);
        } else {
            out.obs.extend_from_slice(&r.obs[row * o..(row + 1) * o]);
        }
        out.counts.push(r.counts[row]);
        out.masks.extend_from_slice(&r.masks[row * a..(row + 1) * a]);
        out.policy.extend_from_slice(&r.policy[row * a..(row + 1) * a]);
        out.value.push(r.value[row]);
        out.player.push(r.player[row]);
        out.mv.push(r.mv[row]);
        out.game.push(gid);
    }
    (outcomes, out)
}

/// One search from env `slot` of `games` with `agent`, using scratch envs `scratch.envs()`
/// (at least `leaf_batch` of them). A search that needs no network runs inside the host
/// where the host can ([`Host::search_within`]: a plugin runs it next to its env, with
/// no call across the boundary per step); the result is the same either way.
pub fn search<H: Host>(
    games: &mut H, slot: usize, scratch: &mut H, agent: &Agent, seed: u64,
) -> Result<Searched, Error> {
    if agent.policy.is_none() && !agent.random() {
        if let Some(found) = games.search_within(slot, scratch, &agent.options, seed) {
            return found;
        }
    }
    search_here(games, slot, scratch, agent, seed)
}

/// [`search`], driven from here whatever the host.
pub fn search_here<H: Host>(
    games: &mut H, slot: usize, scratch: &mut H, agent: &Agent, seed: u64,
) -> Result<Searched, Error> {
    if agent.random() {
        return Err(Error::Invalid("a \"random\" agent does not search".into()));
    }
    let (scratch0, scratch_n) = (scratch.envs().start, scratch.envs().len());
    if scratch_n < agent.options.leaf_batch {
        return Err(Error::Invalid(format!(
            "the scratch batch needs {} envs, not {scratch_n}",
            agent.options.leaf_batch
        )));
    }
    let layout = games.layout();
    let agents = std::slice::from_ref(agent);
    let mut w = Worker::new(games, scratch, agents);
    w.refuse_ended(slot)?;
    let rng = Rng::for_purpose(seed, Purpose::Search, 0);
    let mut one = [Game::new(0, slot, scratch0, rng, vec![0; layout.players], &layout, 0)];
    w.start_search(&mut one[0])?;
    w.search_all(&mut one)?;
    let tree = &one[0].tree;
    let a = layout.num_actions;
    let mut visits = vec![0.0f32; a];
    tree.root_visits(a, &mut visits);
    let (mut priors, mut q) = (vec![0.0f32; a], vec![f32::NAN; a]);
    for c in tree.children(0) {
        priors[c.action as usize] = c.prior;
        if let Some(v) = c.q() {
            q[c.action as usize] = v as f32;
        }
    }
    let best = tree.choose(0.0, &mut Rng::new(seed, 1));
    Ok(Searched { visits, value: tree.root_value().unwrap_or(0.0), best, priors, q })
}
