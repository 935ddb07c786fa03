//! What the wasm-bindgen classes share (feature `js`): reading options objects, and
//! errors. Every error reaches JavaScript as a thrown `Error` with a readable message.

use wasm_bindgen::prelude::*;

use twisterl_core::search::{AgentOptions, Kind};

use crate::params::{number, ParamValue};
use crate::session::seed_from;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = Reflect, js_name = get, catch)]
    fn reflect_get(target: &JsValue, key: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_namespace = Object, js_name = keys, catch)]
    fn object_keys(target: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_namespace = Reflect, js_name = set, catch)]
    fn reflect_set(target: &JsValue, key: &JsValue, value: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = Object)]
    fn js_object() -> JsValue;
}

/// A message as a JavaScript `Error`.
pub fn error(message: String) -> JsError {
    JsError::new(&message)
}

fn get(target: &JsValue, key: &str) -> JsValue {
    reflect_get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// The own keys of an object.
fn keys(target: &JsValue) -> Vec<String> {
    let list = object_keys(target).unwrap_or(JsValue::UNDEFINED);
    let n = get(&list, "length").as_f64().unwrap_or(0.0) as usize;
    (0..n).filter_map(|i| reflect_get(&list, &JsValue::from_f64(i as f64)).ok()?.as_string()).collect()
}

/// The items of an array (or typed array) of numbers.
pub fn numbers(value: &JsValue, what: &str) -> Result<Vec<f64>, String> {
    let n = get(value, "length").as_f64().ok_or_else(|| format!("{what} must be a number or an array of numbers"))?;
    (0..n as usize)
        .map(|i| {
            reflect_get(value, &JsValue::from_f64(i as f64))
                .ok()
                .and_then(|v| v.as_f64())
                .ok_or_else(|| format!("{what} must be an array of numbers (item {i} is not a number)"))
        })
        .collect()
}

/// What a value is, for messages: `the number 3`, `the string "big"`, `undefined`...
pub fn kind(value: &JsValue) -> String {
    if value.is_null() {
        "null".to_string()
    } else if let Some(s) = value.as_string() {
        format!("the string \"{s}\"")
    } else if let Some(v) = value.as_f64() {
        format!("the number {}", number(v))
    } else {
        value.js_typeof().as_string().unwrap_or_default()
    }
}

/// The options of `new Env(...)` and `new VecEnv(...)`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub params: Vec<(String, ParamValue)>,
    pub seed: u64,
    pub difficulty: i64,
    pub num_envs: usize,
}

/// Read an options object; `allowed` names the keys this constructor takes.
pub fn read_options(options: &JsValue, allowed: &[&str]) -> Result<Options, String> {
    let mut out = Options { num_envs: 1, ..Options::default() };
    if options.is_undefined() || options.is_null() {
        return Ok(out);
    }
    if !options.is_object() {
        return Err(format!("options must be an object like {{params: {{...}}, seed: 0}}, not {}", kind(options)));
    }
    for key in keys(options) {
        if !allowed.contains(&key.as_str()) {
            return Err(format!("unknown option `{key}` (the options are: {})", allowed.join(", ")));
        }
    }
    let params = get(options, "params");
    if !params.is_undefined() && !params.is_null() {
        if !params.is_object() {
            return Err(format!("options.params must be an object of param values by name, not {}", kind(&params)));
        }
        for name in keys(&params) {
            let v = get(&params, &name);
            let value = if let Some(x) = v.as_f64() {
                ParamValue::Num(x)
            } else if let Some(b) = v.as_bool() {
                ParamValue::Bool(b)
            } else if let Some(s) = v.as_string() {
                ParamValue::Text(s)
            } else {
                return Err(format!("param `{name}` must be a number, a bool or a string, not {}", kind(&v)));
            };
            out.params.push((name, value));
        }
    }
    let seed = get(options, "seed");
    if !seed.is_undefined() {
        out.seed = seed_from(seed.as_f64().ok_or_else(|| format!("options.seed must be a number, not {}", kind(&seed)))?)?;
    }
    let difficulty = get(options, "difficulty");
    if !difficulty.is_undefined() {
        out.difficulty = whole(&difficulty, "options.difficulty", 0.0)? as i64;
    }
    let num_envs = get(options, "numEnvs");
    if !num_envs.is_undefined() {
        out.num_envs = whole(&num_envs, "options.numEnvs", 1.0)? as usize;
    }
    Ok(out)
}

/// What `new Trainer(options)` asks for: the envs' params, and settings over the recipe's.
#[cfg(feature = "train")]
#[derive(Clone, Debug, Default)]
pub struct TrainRequest {
    pub params: Vec<(String, ParamValue)>,
    pub settings: Vec<(String, crate::trainer::Setting)>,
}

/// Read the options of `new Trainer(...)`: `params`, `seed` and `config` (settings by their
/// `twisterl train` names, such as `num_envs` or `learning_rate`).
#[cfg(feature = "train")]
pub fn trainer_options(options: &JsValue) -> Result<TrainRequest, String> {
    use crate::trainer::Setting;
    let env = read_options(&strip(options, &["config"])?, &["params", "seed"])?;
    let mut out = TrainRequest { params: env.params, settings: Vec::new() };
    if !get(options, "seed").is_undefined() {
        out.settings.push(("seed".into(), Setting::Num(env.seed as f64)));
    }
    let config = get(options, "config");
    if config.is_undefined() || config.is_null() {
        return Ok(out);
    }
    if !config.is_object() {
        return Err(format!("options.config must be an object of training settings, not {}", kind(&config)));
    }
    for key in keys(&config) {
        let v = get(&config, &key);
        let value = if v.is_null() {
            Setting::Null
        } else if let Some(x) = v.as_f64() {
            Setting::Num(x)
        } else if let Some(b) = v.as_bool() {
            Setting::Bool(b)
        } else if let Some(text) = v.as_string() {
            Setting::Text(text)
        } else {
            return Err(format!("options.config.{key} must be a number, a bool, a string or null, not {}", kind(&v)));
        };
        out.settings.push((key, value));
    }
    Ok(out)
}

/// `options` without the keys `drop` (a fresh object), for readers that refuse unknown keys.
#[cfg(feature = "train")]
fn strip(options: &JsValue, drop: &[&str]) -> Result<JsValue, String> {
    if options.is_undefined() || options.is_null() || !options.is_object() {
        return Ok(options.clone());
    }
    let copy = js_object();
    for key in keys(options) {
        if !drop.contains(&key.as_str()) {
            reflect_set(&copy, &JsValue::from_str(&key), &get(options, &key)).map_err(|_| "cannot read options")?;
        }
    }
    Ok(copy)
}

/// A whole number of at least `min`.
pub fn whole(value: &JsValue, what: &str, min: f64) -> Result<f64, String> {
    match value.as_f64() {
        Some(v) if v.fract() == 0.0 && v >= min && v <= crate::session::MAX_SEED => Ok(v),
        _ => Err(format!("{what} must be an integer of at least {}, not {}", number(min), kind(value))),
    }
}

/// `options.deterministic` of `act` and `agentStep` (default false).
pub fn deterministic(options: &JsValue) -> Result<bool, String> {
    if options.is_undefined() || options.is_null() {
        return Ok(false);
    }
    for key in keys(options) {
        if key != "deterministic" {
            return Err(format!("unknown option `{key}` (the option is: deterministic)"));
        }
    }
    let flag = get(options, "deterministic");
    if flag.is_undefined() {
        return Ok(false);
    }
    flag.as_bool().ok_or_else(|| format!("options.deterministic must be a bool, not {}", kind(&flag)))
}

/// What `Env.search(options)` asks for: the settings, the seed, and the kind if one was named.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Search {
    pub options: AgentOptions,
    pub seed: u64,
    pub kind: Option<Kind>,
}

/// The options of `Env.search`; see `SearchOptions` below.
pub fn search_options(options: &JsValue) -> Result<Search, String> {
    const KEYS: &[&str] = &["kind", "simulations", "cPuct", "uctC", "fpu", "leafBatch", "dirichletAlpha",
                            "dirichletFrac", "rolloutLimit", "seed"];
    let mut out = Search { options: AgentOptions::default(), seed: 0, kind: None };
    if options.is_undefined() || options.is_null() {
        return Ok(out);
    }
    for key in keys(options) {
        if !KEYS.contains(&key.as_str()) {
            return Err(format!("unknown option `{key}` (the options are: {})", KEYS.join(", ")));
        }
    }
    let o = &mut out.options;
    let count = |key: &str, min: f64, default: usize| -> Result<usize, String> {
        let v = get(options, key);
        if v.is_undefined() { Ok(default) } else { Ok(whole(&v, &format!("options.{key}"), min)? as usize) }
    };
    let real = |key: &str, default: f32| -> Result<f32, String> {
        let v = get(options, key);
        match v.as_f64() {
            _ if v.is_undefined() => Ok(default),
            Some(x) if x.is_finite() => Ok(x as f32),
            _ => Err(format!("options.{key} must be a finite number, not {}", kind(&v))),
        }
    };
    o.simulations = count("simulations", 1.0, o.simulations)?;
    o.leaf_batch = count("leafBatch", 1.0, o.leaf_batch)?;
    o.rollout_limit = count("rolloutLimit", 0.0, o.rollout_limit)?;
    o.c_puct = real("cPuct", o.c_puct)?;
    o.uct_c = real("uctC", o.uct_c)?;
    o.fpu = real("fpu", o.fpu)?;
    o.dirichlet_alpha = real("dirichletAlpha", o.dirichlet_alpha)?;
    o.dirichlet_frac = real("dirichletFrac", o.dirichlet_frac)?;
    let seed = get(options, "seed");
    if !seed.is_undefined() {
        out.seed = seed_from(seed.as_f64().ok_or_else(|| format!("options.seed must be a number, not {}", kind(&seed)))?)?;
    }
    let named = get(options, "kind");
    out.kind = match named.as_string().as_deref() {
        _ if named.is_undefined() => None,
        Some("net") => Some(Kind::Net),
        Some("rollout") => Some(Kind::Rollout),
        _ => return Err(format!("options.kind must be \"net\" or \"rollout\", not {}", kind(&named))),
    };
    Ok(out)
}

/// The TypeScript types of the options objects.
#[wasm_bindgen(typescript_custom_section)]
const OPTION_TYPES: &str = r#"
/** Options of `new Env(...)` and `new VecEnv(...)`. */
export interface EnvOptions {
  /** Param values by name (numbers, bools, or enum variant names); the rest keep their defaults. */
  params?: Record<string, number | boolean | string>;
  /** The seed of the random stream: an integer in 0..2^53. Default 0. */
  seed?: number;
  /** The difficulty the reset block uses. Default 0. */
  difficulty?: number;
  /** `VecEnv` only: how many envs. Default 1. */
  numEnvs?: number;
}

/** Options of `Env.search`: the search settings of `twisterl.mcts`. */
export interface SearchOptions {
  /** "net": AlphaZero's PUCT on the env's policy; "rollout": pure MCTS. Default: "net" when the env has a policy. */
  kind?: "net" | "rollout";
  /** Simulations from the root. Default 100. */
  simulations?: number;
  /** PUCT's exploration constant. Default 1.5. */
  cPuct?: number;
  /** UCT's exploration constant (pure MCTS). Default 2. */
  uctC?: number;
  /** The value of unvisited children under PUCT. Default 0. */
  fpu?: number;
  /** Leaves evaluated per forward pass. Default 1. */
  leafBatch?: number;
  /** Dirichlet noise at the root: its alpha (default 0.3) and weight (default 0: none). */
  dirichletAlpha?: number;
  dirichletFrac?: number;
  /** The most steps of one random playout. Default 100000. */
  rolloutLimit?: number;
  /** The seed of the search's random stream: the same state and seed give the same search. Default 0. */
  seed?: number;
}

/** Options of `new Trainer(...)`. */
export interface TrainerOptions {
  /** Param values by name; the rest keep their defaults. */
  params?: Record<string, number | boolean | string>;
  /** Seeds the envs, the action draws and the minibatch order. Default: the recipe's. */
  seed?: number;
  /** Training settings by their `twisterl train` names (`num_envs`, `learning_rate`,
   * `diff_max`...), over the recipe `twisterl export --train` wrote. */
  config?: Record<string, number | boolean | string | null>;
}

/** Options of `Policy.act` and `Env.agentStep`. */
export interface ActOptions {
  /** Take the most likely legal action instead of sampling one. Default false. */
  deterministic?: boolean;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `EnvOptions` in TypeScript.
    #[wasm_bindgen(typescript_type = "EnvOptions")]
    pub type EnvOptions;
    /// `ActOptions` in TypeScript.
    #[wasm_bindgen(typescript_type = "ActOptions")]
    pub type ActOptions;
    /// `SearchOptions` in TypeScript.
    #[wasm_bindgen(typescript_type = "SearchOptions")]
    pub type SearchOptions;
    /// `TrainerOptions` in TypeScript.
    #[wasm_bindgen(typescript_type = "TrainerOptions")]
    pub type TrainerOptions;
}
