//! One environment as a host plays it: params by name, seeds, the step contract of the
//! runtime core's [`Slot`], the episode's return, and an optional agent.
//!
//! Every fallible call returns `Result<_, String>`: the message names the `.twl` file
//! and line for run-time faults, so a binding only has to turn it into its host's error.

use twisterl_core::batch::{Batch, Slot};
use twisterl_core::env::Env;
use twisterl_core::fault::Fault;
use twisterl_core::host::{Error, Host};
use twisterl_core::policy::Policy;
use twisterl_core::search::{self, Agent as SearchAgent, AgentOptions, Searched};

#[cfg(feature = "policy")]
use crate::agent::Agent;
use crate::params::{number, param_vector, ParamSpec, ParamValue};

/// What the env declares: the generated binding crate writes it from the checked IR.
#[derive(Clone, Copy, Debug)]
pub struct Info {
    pub name: &'static str,
    /// The `.twl` file's name, for messages.
    pub source: &'static str,
    pub params: &'static [ParamSpec],
}

impl Info {
    /// A fault as a sentence that names the `.twl` file and line.
    pub fn describe(&self, fault: &Fault) -> String {
        if fault.at.line > 0 {
            format!("{}:{}:{}: {}", self.source, fault.at.line, fault.at.col, fault.describe())
        } else {
            fault.describe()
        }
    }

    pub fn param_vector(&self, given: &[(String, ParamValue)]) -> Result<Vec<twisterl_core::param::Param>, String> {
        param_vector(self.name, self.params, given)
    }
}

/// The largest seed a host can give: JavaScript numbers are exact up to 2^53.
pub const MAX_SEED: f64 = 9_007_199_254_740_991.0;

/// A seed from a host's number: a non-negative integer.
pub fn seed_from(value: f64) -> Result<u64, String> {
    if value.fract() != 0.0 || !(0.0..=MAX_SEED).contains(&value) {
        return Err(format!("a seed must be an integer in 0..2^53, not {}", number(value)));
    }
    Ok(value as u64)
}

/// What one step did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepInfo {
    /// The reward of the player who moved.
    pub reward: f64,
    pub terminated: bool,
    pub truncated: bool,
    pub success: bool,
    /// Whose turn it is now.
    pub player: usize,
}

/// One env with its episode bookkeeping.
#[derive(Clone, Debug)]
pub struct Session<E: Env> {
    pub info: Info,
    slot: Slot<E>,
    params: Vec<twisterl_core::param::Param>,
    started: bool,
    rewards: Vec<f64>,
    episode_return: f64,
    lows: Vec<f64>,
    highs: Vec<f64>,
    mask: Vec<bool>,
    /// Scratch space for the agent's observation.
    #[cfg(feature = "policy")]
    obs: Vec<f32>,
}

impl<E: Env> Session<E> {
    pub fn new(info: Info, params: &[(String, ParamValue)], seed: u64, difficulty: i64) -> Result<Session<E>, String> {
        let params = info.param_vector(params)?;
        let env = E::new(&params, seed, 0).map_err(|f| format!("invalid params for {}: {}", info.name, f.describe()))?;
        let n_values = if E::CONTINUOUS { env.num_actions() } else { 0 };
        let (mut lows, mut highs) = (vec![0.0; n_values], vec![0.0; n_values]);
        env.value_bounds(&mut lows, &mut highs);
        let mask = vec![false; if E::CONTINUOUS { 0 } else { env.num_actions() }];
        #[cfg(feature = "policy")]
        let obs = vec![0.0; env.obs_size()];
        let mut session = Session {
            info, slot: Slot::new(env), params, started: false, rewards: vec![0.0; E::PLAYERS],
            episode_return: 0.0, lows, highs, mask,
            #[cfg(feature = "policy")]
            obs,
        };
        session.set_difficulty(difficulty)?;
        Ok(session)
    }

    fn fault(&self, f: Fault) -> String {
        self.info.describe(&f)
    }

    fn error(&self, e: Error) -> String {
        match e {
            Error::Fault { fault, .. } => self.fault(fault),
            Error::Invalid(message) => message,
        }
    }

    pub fn set_difficulty(&mut self, difficulty: i64) -> Result<(), String> {
        if difficulty < 0 {
            return Err(format!("difficulty must be a non-negative int, not {difficulty}"));
        }
        self.slot.env.set_difficulty(difficulty);
        self.slot.forget_mask();
        Ok(())
    }

    pub fn difficulty(&self) -> i64 {
        self.slot.env.difficulty()
    }

    /// Start a new episode; with a seed, restart the env's random stream from it first.
    pub fn reset(&mut self, seed: Option<u64>) -> Result<(), String> {
        if let Some(seed) = seed {
            let difficulty = self.slot.env.difficulty();
            let mut env = E::new(&self.params, seed, 0).map_err(|f| self.fault(f))?;
            env.set_difficulty(difficulty);
            self.slot = Slot::new(env);
        }
        self.slot.reset().map_err(|f| self.fault(f))?;
        self.started = true;
        self.episode_return = 0.0;
        self.rewards.iter_mut().for_each(|r| *r = 0.0);
        Ok(())
    }

    fn check_started(&self) -> Result<(), String> {
        if self.started {
            Ok(())
        } else {
            Err("call reset() before step()".to_string())
        }
    }

    /// A discrete action.
    pub fn step(&mut self, action: i64) -> Result<StepInfo, String> {
        self.check_started()?;
        if E::CONTINUOUS {
            return Err(format!("this env takes {} action value(s), not an action number", self.lows.len()));
        }
        let actor = self.slot.env.player();
        let out = self.slot.step(action, &mut self.rewards, false);
        let out = out.map_err(|f| self.fault(f))?;
        self.finish(actor, out.terminated, out.truncated)
    }

    /// A continuous action: its values, clipped to their bounds.
    pub fn step_values(&mut self, values: &[f64]) -> Result<StepInfo, String> {
        self.check_started()?;
        if !E::CONTINUOUS {
            return Err("this env takes an action number, not action values".to_string());
        }
        if values.len() != self.lows.len() {
            return Err(format!("this env takes {} action value(s), not {}", self.lows.len(), values.len()));
        }
        let actor = self.slot.env.player();
        let out = self.slot.step_values(values, &self.lows, &self.highs, &mut self.rewards, false);
        let out = out.map_err(|f| self.fault(f))?;
        self.finish(actor, out.terminated, out.truncated)
    }

    fn finish(&mut self, actor: usize, terminated: bool, truncated: bool) -> Result<StepInfo, String> {
        let reward = self.rewards[actor];
        self.episode_return += self.rewards[0];
        let success = self.slot.env.success().map_err(|f| self.fault(f))?;
        Ok(StepInfo { reward, terminated, truncated, success, player: self.slot.env.player() })
    }

    #[cfg(feature = "policy")]
    /// Let `agent` choose the next action (or action values) from the current observation
    /// and mask, and take it; the action number is -1 for action values.
    pub fn agent_step(&mut self, agent: &mut Agent, deterministic: bool) -> Result<(i64, StepInfo), String> {
        self.check_started()?;
        if self.slot.over {
            return Err(Fault::new(twisterl_core::fault::FaultKind::EpisodeOver, twisterl_core::fault::at(0, 0), 0, 0, 0)
                .describe());
        }
        agent.check_fits(self.obs.len(), self.slot.env.num_actions())?;
        let mut obs = std::mem::take(&mut self.obs);
        let observed = self.slot.env.observe_dense(&mut obs).map_err(|f| self.fault(f));
        if E::CONTINUOUS {
            let values = observed.and_then(|_| agent.act_values(&obs, deterministic));
            self.obs = obs;
            return Ok((-1, self.step_values(&values?)?));
        }
        let mut mask = std::mem::take(&mut self.mask);
        let picked = observed.and_then(|_| self.slot.env.legal(&mut mask).map_err(|f| self.fault(f)))
            .and_then(|_| agent.act(&obs, &mask, deterministic));
        self.obs = obs;
        self.mask = mask;
        let action = picked? as i64;
        Ok((action, self.step(action)?))
    }

    /// A search from the current state (see `twisterl_core::search`): with `policy`, AlphaZero's
    /// PUCT on its priors and values, else pure MCTS. The env is left unchanged; the same
    /// state and seed give the same search as natively.
    pub fn search(&self, options: AgentOptions, policy: Option<Policy>, seed: u64) -> Result<Searched, String> {
        self.check_started()?;
        let made = |f: Fault| format!("cannot set up the search: {}", f.describe());
        let mut games = Batch::<E>::new(&self.params, 1, 0).map_err(made)?;
        games.slot_mut(0).clone_from(&self.slot);
        let agent = SearchAgent::new(options, policy, Vec::new(), &games.layout())?;
        let mut scratch = Batch::<E>::new(&self.params, options.leaf_batch, 0).map_err(made)?;
        search::search(&mut games, 0, &mut scratch, &agent, seed).map_err(|e| self.error(e))
    }

    pub fn observation(&self) -> Result<Vec<f32>, String> {
        let mut obs = vec![0.0; self.slot.env.obs_size()];
        self.slot.env.observe_dense(&mut obs).map_err(|f| self.fault(f))?;
        Ok(obs)
    }

    pub fn action_mask(&self) -> Result<Vec<bool>, String> {
        let mut mask = vec![false; self.mask.len()];
        self.slot.env.legal(&mut mask).map_err(|f| self.fault(f))?;
        Ok(mask)
    }

    pub fn render(&self) -> Result<String, String> {
        self.slot.env.render().map_err(|f| self.fault(f))
    }

    pub fn action_names(&self) -> Vec<String> {
        (0..self.mask.len()).map(|a| self.slot.env.action_label(a)).collect()
    }

    /// The state as numbers: the state variables in order, then player and steps.
    pub fn state(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.slot.env.state_len()];
        self.slot.env.get_state(&mut out);
        out
    }

    /// Put a state back (checked against the declared ranges); the episode goes on from it.
    pub fn set_state(&mut self, values: &[f64]) -> Result<(), String> {
        let mut env = self.slot.env.clone();
        env.set_state(values).map_err(|f| self.fault(f))?;
        // Like a reset, a set state starts an episode: endings are judged after steps.
        self.slot.env = env;
        self.slot.forget_mask();
        self.slot.over = false;
        self.started = true;
        Ok(())
    }

    /// Each player's reward in the last step.
    pub fn rewards(&self) -> &[f64] {
        &self.rewards
    }

    /// Player 0's rewards summed over the episode so far.
    pub fn episode_return(&self) -> f64 {
        self.episode_return
    }

    pub fn success(&self) -> Result<bool, String> {
        self.slot.env.success().map_err(|f| self.fault(f))
    }

    /// The episode has ended (or never started): step needs a reset first.
    pub fn done(&self) -> bool {
        self.slot.over
    }

    pub fn player(&self) -> usize {
        self.slot.env.player()
    }

    pub fn steps(&self) -> i64 {
        self.slot.env.steps()
    }

    pub fn num_actions(&self) -> usize {
        self.slot.env.num_actions()
    }

    pub fn obs_size(&self) -> usize {
        self.slot.env.obs_size()
    }

    /// Lower and upper bounds of a continuous action's values.
    pub fn value_bounds(&self) -> (&[f64], &[f64]) {
        (&self.lows, &self.highs)
    }
}
