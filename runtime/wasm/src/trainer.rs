//! Training where the env runs (feature `train`): the runtime core's PPO loop
//! ([`PpoTrainer`]) on a batch of statically linked envs, one thread, from a recipe that
//! `twisterl export --train` resolves as `twisterl train` would (the auto config included).
//!
//! A [`Recipe`] is the config's keys that the loop reads, by their `twisterl train` names;
//! the page may override any of them. [`TrainSession`] owns the envs and the learner and
//! hands out the current policy as an [`Agent`] or a policy file.

use std::collections::BTreeMap;

use twisterl_core::batch::Batch;
use twisterl_core::env::Env;
use twisterl_core::host::{Error, Host};
use twisterl_core::learn::{AdamConfig, Intrinsic, Iteration, Learner, PpoSettings, PpoTrainer};
use twisterl_core::twist::Twist;

use crate::agent::Agent;
use crate::json::Json;
use crate::params::ParamValue;
use crate::session::Info;

/// One setting's value, as JSON or JavaScript gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum Setting {
    Num(f64),
    Bool(bool),
    Null,
    Text(String),
}

/// What a run needs beyond the network: the loop's settings and the envs' shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    pub settings: PpoSettings,
    pub num_envs: usize,
    /// Truncate episodes after this many steps (0: only the env's own endings).
    pub max_episode_steps: i64,
    pub max_grad_norm: Option<f64>,
    /// The difficulty the run starts at.
    pub difficulty: i64,
    /// Learn from the env's symmetries (each step draws one, or none).
    pub twists: bool,
}

/// The keys a recipe has, in the order `config` lists them.
pub const KEYS: &[&str] = &[
    "num_envs", "num_steps", "gamma", "gae_lambda", "update_epochs", "num_minibatches", "clip_coef", "clip_vloss",
    "target_kl", "vf_coef", "ent_coef", "learning_rate", "anneal_lr", "max_env_steps", "max_grad_norm", "norm_adv",
    "norm_reward", "intrinsic", "intrinsic_coef", "max_episode_steps", "difficulty", "curriculum", "diff_threshold",
    "diff_max", "min_episodes", "twists", "seed",
];

impl Default for Recipe {
    fn default() -> Recipe {
        Recipe { settings: PpoSettings::default(), num_envs: 256, max_episode_steps: 0, max_grad_norm: Some(0.5),
                 difficulty: 1, twists: false }
    }
}

impl Recipe {
    /// A recipe from a JSON object of settings by name, over the defaults.
    pub fn from_json(text: &str) -> Result<Recipe, String> {
        let doc = Json::parse(text).map_err(|e| format!("the training recipe is not valid JSON: {e}"))?;
        let entries = doc.as_object().ok_or("the training recipe must be a JSON object of settings")?;
        let mut recipe = Recipe::default();
        for (key, value) in entries {
            let value = match value {
                Json::Num(v) => Setting::Num(*v),
                Json::Bool(b) => Setting::Bool(*b),
                Json::Null => Setting::Null,
                Json::Str(text) => Setting::Text(text.clone()),
                _ => return Err(format!("setting `{key}` must be a number, a bool, a string or null")),
            };
            recipe.set(key, value)?;
        }
        Ok(recipe)
    }

    /// Change one setting; an unknown key or a value of the wrong kind is an error that says so.
    pub fn set(&mut self, key: &str, value: Setting) -> Result<(), String> {
        let s = &mut self.settings;
        let num = |v: &Setting| match v {
            Setting::Num(x) if x.is_finite() => Ok(*x),
            _ => Err(format!("setting `{key}` must be a finite number, not {}", show(v))),
        };
        let count = |v: &Setting, min: f64| match v {
            Setting::Num(x) if x.fract() == 0.0 && *x >= min && *x <= 9.0e15 => Ok(*x),
            _ => Err(format!("setting `{key}` must be an int of at least {min}, not {}", show(v))),
        };
        let flag = |v: &Setting| match v {
            Setting::Bool(b) => Ok(*b),
            _ => Err(format!("setting `{key}` must be true or false, not {}", show(v))),
        };
        match key {
            "num_envs" => self.num_envs = count(&value, 1.0)? as usize,
            "num_steps" => s.num_steps = count(&value, 1.0)? as usize,
            "gamma" => s.gamma = num(&value)? as f32,
            "gae_lambda" => s.gae_lambda = num(&value)? as f32,
            "update_epochs" => s.update_epochs = count(&value, 1.0)? as usize,
            "num_minibatches" => s.num_minibatches = count(&value, 1.0)? as usize,
            "clip_coef" => s.clip_coef = num(&value)? as f32,
            "clip_vloss" => s.clip_vloss = flag(&value)?,
            "target_kl" => s.target_kl = if value == Setting::Null { None } else { Some(num(&value)?) },
            "vf_coef" => s.vf_coef = num(&value)? as f32,
            "ent_coef" => s.ent_coef = num(&value)? as f32,
            "learning_rate" => s.learning_rate = num(&value)?,
            "anneal_lr" => s.anneal_lr = flag(&value)?,
            "max_env_steps" => s.max_env_steps = count(&value, 0.0)? as u64,
            "max_grad_norm" => self.max_grad_norm = if value == Setting::Null { None } else { Some(num(&value)?) },
            "norm_adv" => s.norm_adv = flag(&value)?,
            "norm_reward" => s.norm_reward = flag(&value)?,
            "intrinsic" => s.intrinsic = intrinsic(&value)?,
            "intrinsic_coef" => s.intrinsic_coef = num(&value)? as f32,
            "max_episode_steps" => self.max_episode_steps = count(&value, 0.0)? as i64,
            "difficulty" => self.difficulty = count(&value, 0.0)? as i64,
            "curriculum" => s.curriculum = flag(&value)?,
            "diff_threshold" => s.diff_threshold = num(&value)?,
            "diff_max" => s.diff_max = count(&value, 0.0)? as i64,
            "min_episodes" => s.min_episodes = count(&value, 0.0)? as u64,
            "twists" => self.twists = flag(&value)?,
            "seed" => s.seed = count(&value, 0.0)? as u64,
            _ => return Err(format!("unknown training setting `{key}` (the settings are: {})", KEYS.join(", "))),
        }
        Ok(())
    }

    /// The settings in effect, as a JSON object by name.
    pub fn to_json(&self) -> String {
        let s = &self.settings;
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |x| format!("{x:?}"));
        let items: Vec<String> = [
            ("num_envs", self.num_envs.to_string()),
            ("num_steps", s.num_steps.to_string()),
            ("gamma", format!("{:?}", s.gamma)),
            ("gae_lambda", format!("{:?}", s.gae_lambda)),
            ("update_epochs", s.update_epochs.to_string()),
            ("num_minibatches", s.num_minibatches.to_string()),
            ("clip_coef", format!("{:?}", s.clip_coef)),
            ("clip_vloss", s.clip_vloss.to_string()),
            ("target_kl", opt(s.target_kl)),
            ("vf_coef", format!("{:?}", s.vf_coef)),
            ("ent_coef", format!("{:?}", s.ent_coef)),
            ("learning_rate", format!("{:?}", s.learning_rate)),
            ("anneal_lr", s.anneal_lr.to_string()),
            ("max_env_steps", s.max_env_steps.to_string()),
            ("max_grad_norm", opt(self.max_grad_norm)),
            ("norm_adv", s.norm_adv.to_string()),
            ("norm_reward", s.norm_reward.to_string()),
            ("intrinsic", format!("\"{}\"", match s.intrinsic { Intrinsic::None => "none", Intrinsic::Count => "count" })),
            ("intrinsic_coef", format!("{:?}", s.intrinsic_coef)),
            ("max_episode_steps", self.max_episode_steps.to_string()),
            ("difficulty", self.difficulty.to_string()),
            ("curriculum", s.curriculum.to_string()),
            ("diff_threshold", format!("{:?}", s.diff_threshold)),
            ("diff_max", s.diff_max.to_string()),
            ("min_episodes", s.min_episodes.to_string()),
            ("twists", self.twists.to_string()),
            ("seed", s.seed.to_string()),
        ]
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
        format!("{{{}}}", items.join(","))
    }
}

fn show(v: &Setting) -> String {
    match v {
        Setting::Num(x) => format!("{x}"),
        Setting::Bool(b) => b.to_string(),
        Setting::Null => "null".into(),
        Setting::Text(t) => format!("{t:?}"),
    }
}

/// `intrinsic`: "none" or "count" (RND trains a second network in torch: not in the page).
fn intrinsic(v: &Setting) -> Result<Intrinsic, String> {
    match v {
        Setting::Text(t) if t == "none" => Ok(Intrinsic::None),
        Setting::Text(t) if t == "count" => Ok(Intrinsic::Count),
        Setting::Text(t) if t == "rnd" => Err("setting `intrinsic`: the page's trainer has no \"rnd\" (its predictor \
                                                trains in torch); use \"count\" or \"none\"".into()),
        _ => Err(format!("setting `intrinsic` must be \"none\" or \"count\", not {}", show(v))),
    }
}

/// A training run in the page: the envs, the learner, and where the run stands.
pub struct TrainSession<E: Env> {
    pub info: Info,
    pub recipe: Recipe,
    envs: Batch<E>,
    trainer: PpoTrainer,
    meta: BTreeMap<String, String>,
    finished: bool,
}

impl<E: Env> TrainSession<E> {
    /// `recipe.num_envs` envs with `params`, env `i` on stream `i` of `seed` (which also seeds
    /// the loop), learning from `start`'s weights.
    pub fn new(info: Info, params: &[(String, ParamValue)], recipe: Recipe, start: &Agent)
               -> Result<TrainSession<E>, String> {
        let values = info.param_vector(params)?;
        let seed = recipe.settings.seed;
        let mut envs = Batch::<E>::new(&values, recipe.num_envs, seed)
            .map_err(|f| format!("invalid params for {}: {}", info.name, f.describe()))?;
        for i in 0..envs.len() {
            envs.slot_mut(i).step_limit = recipe.max_episode_steps;
        }
        let layout = envs.layout();
        start.check_fits(layout.obs_size, layout.num_actions)?;
        let mut twists = Vec::new();
        if recipe.twists {
            if E::CONTINUOUS {
                return Err("twists apply to envs with discrete actions".into());
            }
            let env = &envs.slot(0).env;
            for k in 0..E::TWISTS {
                let (mut obs, mut act) = (vec![0u32; layout.obs_size], vec![0u32; layout.num_actions]);
                env.twist(k, &mut obs, &mut act).map_err(|f| info.describe(&f))?;
                twists.push(Twist::new(obs, act, layout.obs_size, layout.num_actions)?);
            }
        }
        let adam = AdamConfig::new(recipe.settings.learning_rate, 1e-5);
        let learner = Learner::new(start.policy.clone(), start.log_std.clone(), Vec::new(), adam,
                                   recipe.max_grad_norm, 1)?;
        let trainer = PpoTrainer::new(&mut envs, learner, recipe.settings.clone(), recipe.difficulty, twists)
            .map_err(|e| describe(&info, e))?;
        let mut meta = start.meta.clone();
        meta.insert("env".into(), info.name.to_string());
        Ok(TrainSession { info, recipe, envs, trainer, meta, finished: false })
    }

    /// One iteration: collect, learn, and raise the difficulty if the bar was met.
    pub fn iterate(&mut self) -> Result<Iteration, String> {
        let it = self.trainer.iterate(&mut self.envs).map_err(|e| describe(&self.info, e))?;
        let layout = self.envs.layout();
        let top = it.difficulty >= self.trainer.settings.diff_max && self.trainer.solved(&it, &layout);
        self.finished = top || self.trainer.out_of_steps();
        Ok(it)
    }

    /// The curriculum's last difficulty was solved, or `max_env_steps` was reached.
    pub fn finished(&self) -> bool {
        self.finished
    }

    pub fn difficulty(&self) -> i64 {
        self.trainer.difficulty
    }

    pub fn iteration(&self) -> u64 {
        self.trainer.iteration
    }

    pub fn env_steps(&self) -> u64 {
        self.trainer.env_steps
    }

    /// The current weights as an agent, with metadata saying where training stands.
    pub fn agent(&self) -> Agent {
        let mut meta = self.meta.clone();
        meta.insert("difficulty".into(), self.trainer.difficulty.to_string());
        meta.insert("iteration".into(), self.trainer.iteration.to_string());
        meta.insert("env_steps".into(), self.trainer.env_steps.to_string());
        meta.insert("checkpoint".into(), "browser".into());
        let mut agent = Agent::new(self.trainer.learner.policy.clone(), meta);
        agent.log_std.clone_from(&self.trainer.learner.log_std);
        agent
    }
}

fn describe(info: &Info, e: Error) -> String {
    match e {
        Error::Fault { fault, env: Some(i) } => format!("{} (in env {i})", info.describe(&fault)),
        Error::Fault { fault, env: None } => info.describe(&fault),
        Error::Invalid(message) => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_reads_its_keys_and_names_what_is_wrong() {
        let r = Recipe::from_json(r#"{"num_envs": 8, "learning_rate": 0.001, "target_kl": null, "twists": true}"#)
            .unwrap();
        assert_eq!((r.num_envs, r.settings.learning_rate, r.settings.target_kl, r.twists), (8, 0.001, None, true));
        assert_eq!(Recipe::from_json(&r.to_json()).unwrap(), r);
        let mut r = Recipe::default();
        assert!(r.set("num_env", Setting::Num(3.0)).unwrap_err().contains("unknown training setting `num_env`"));
        assert!(r.set("num_envs", Setting::Num(0.0)).unwrap_err().contains("at least 1"));
        assert!(r.set("norm_adv", Setting::Num(1.0)).unwrap_err().contains("true or false"));
        assert!(r.set("gamma", Setting::Null).unwrap_err().contains("finite number"));
        assert!(Recipe::from_json("[1]").unwrap_err().contains("JSON object"));
        assert!(Recipe::from_json(r#"{"gamma": "high"}"#).unwrap_err().contains("`gamma`"));
        let r = Recipe::from_json(r#"{"intrinsic": "count", "intrinsic_coef": 0.5}"#).unwrap();
        assert_eq!((r.settings.intrinsic, r.settings.intrinsic_coef), (Intrinsic::Count, 0.5));
        assert_eq!(Recipe::from_json(&r.to_json()).unwrap(), r);
        assert!(Recipe::from_json(r#"{"intrinsic": "rnd"}"#).unwrap_err().contains("no \"rnd\""));
        assert!(Recipe::from_json(r#"{"intrinsic": true}"#).unwrap_err().contains("\"none\" or \"count\""));
    }
}
