//! `play` and `search`: the search of `twisterl_core::search` on plugin batches, with the
//! GIL released and games spread over the games batch's threads.

use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use twisterl_core::host::Layout;
use twisterl_core::search::{
    self as core_search, check_play, merge, scratch_range, Agent, AgentOptions, Kind, PlayOptions,
};

use crate::batch::{Batch, Inner};
use crate::error::{invalid, to_py};
use crate::policy::Policy;

/// An agent from a dict of search options (see `twisterl.search.agent`): kind ("net",
/// "rollout" or "random"), policy, simulations, c_puct, uct_c, fpu, leaf_batch,
/// dirichlet_alpha, dirichlet_frac, rollout_limit, twists.
fn agent(d: &Bound<'_, PyAny>, layout: &Layout) -> PyResult<Agent> {
    let d = d.cast::<PyDict>().map_err(|_| PyValueError::new_err("each agent is a dict of search options"))?;
    let known = [
        "kind",
        "policy",
        "simulations",
        "c_puct",
        "uct_c",
        "fpu",
        "leaf_batch",
        "dirichlet_alpha",
        "dirichlet_frac",
        "rollout_limit",
        "twists",
    ];
    for k in d.keys() {
        let k: String = k.extract()?;
        if !known.contains(&k.as_str()) {
            return Err(PyValueError::new_err(format!("unknown search option `{k}`; known: {}", known.join(", "))));
        }
    }
    fn get<'py, T: FromPyObjectOwned<'py>>(d: &Bound<'py, PyDict>, key: &str, what: &str, default: T) -> PyResult<T> {
        match d.get_item(key)? {
            Some(v) if !v.is_none() => {
                v.extract::<T>().map_err(|_| PyValueError::new_err(format!("search option `{key}` must be {what}")))
            }
            _ => Ok(default),
        }
    }
    let o = AgentOptions::default();
    let kind = match get(d, "kind", "a string", "net".to_string())?.as_str() {
        "net" => Kind::Net,
        "rollout" => Kind::Rollout,
        "random" => Kind::Random,
        other => {
            return Err(PyValueError::new_err(format!(
                "agent kind must be \"net\", \"rollout\" or \"random\", not {other:?}"
            )))
        }
    };
    let options = AgentOptions {
        kind,
        simulations: get(d, "simulations", "usize", o.simulations)?,
        c_puct: get(d, "c_puct", "f32", o.c_puct)?,
        uct_c: get(d, "uct_c", "f32", o.uct_c)?,
        fpu: get(d, "fpu", "f32", o.fpu)?,
        leaf_batch: get(d, "leaf_batch", "usize", o.leaf_batch)?,
        dirichlet_alpha: get(d, "dirichlet_alpha", "f32", o.dirichlet_alpha)?,
        dirichlet_frac: get(d, "dirichlet_frac", "f32", o.dirichlet_frac)?,
        rollout_limit: get(d, "rollout_limit", "usize", o.rollout_limit)?,
    };
    let policy = match (kind, d.get_item("policy")?) {
        (Kind::Net, Some(p)) => Some(
            p.cast::<Policy>()
                .map_err(|_| PyValueError::new_err("policy must be a twisterl._core.Policy"))?
                .borrow()
                .inner
                .clone(),
        ),
        _ => None,
    };
    let twists = get(d, "twists", "a list of (obs permutation, action permutation)", Vec::new())?;
    invalid(Agent::new(options, policy, twists, layout))
}

/// The games and scratch batches of one call, held, checked to be two batches of one plugin.
fn hold<'a>(
    py: Python<'_>, games: &'a Batch, scratch: &'a Batch,
) -> PyResult<(std::sync::MutexGuard<'a, Inner>, std::sync::MutexGuard<'a, Inner>)> {
    if std::ptr::eq(games, scratch) {
        return Err(PyValueError::new_err(
            "the scratch batch must be another batch than the games (the search \
                                          overwrites its envs)",
        ));
    }
    let held = Batch::enter_two(py, games, scratch)?;
    if !std::ptr::eq(held.0.envs.table(), held.1.envs.table()) {
        return Err(PyValueError::new_err("the games and scratch batches must come from the same env plugin"));
    }
    Ok(held)
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
pub fn play<'py>(
    py: Python<'py>, games: &Batch, scratch: &Batch, agents: &Bound<'py, PyList>, num_games: usize, seed: u64,
    temperature: f32, temp_moves: usize, record: bool, max_moves: usize, tries: usize, retry_temperature: f32,
    start_state: Option<Vec<f64>>,
) -> PyResult<Bound<'py, PyDict>> {
    let l = games.layout;
    let agents: Vec<Agent> = agents.iter().map(|d| agent(&d, &l)).collect::<PyResult<_>>()?;
    let opts = PlayOptions {
        num_games: num_games * tries,
        tries,
        seed,
        temperature,
        temp_moves,
        retry_temperature,
        record,
        max_moves,
        start_state,
    };
    let (num_slots, scratch_len) = (games.sizes.num_envs, scratch.sizes.num_envs);
    check_play(&agents, &opts, &l, num_slots, scratch_len).map_err(to_py)?;
    let (mut g, mut s) = hold(py, games, scratch)?;
    let views = g.envs.split(0..num_slots, games.threads()).map_err(to_py)?;
    let mut scratches = Vec::new();
    let mut rest = s.envs.envs(0..scratch_len).map_err(to_py)?;
    for v in &views {
        let r = scratch_range(twisterl_core::host::Host::envs(v), &agents);
        let (head, tail) = rest.split_at(r.end).map_err(to_py)?;
        scratches.push(head);
        rest = tail;
    }
    let played =
        games.parallel(py, views, scratches, |v, mut sv| core_search::play(v, &mut sv, &agents, &opts, num_slots))?;
    drop((g, s));
    let (outcomes, rec) = merge(played, opts.num_games, &l);
    let (n, p) = (outcomes.len(), l.players);
    let d = PyDict::new(py);
    let returns: Vec<f64> =
        outcomes.iter().flat_map(|o| (0..p).map(|k| o.returns.get(k).copied().unwrap_or(0.0))).collect();
    let seats: Vec<i64> =
        outcomes.iter().flat_map(|o| (0..p).map(|k| o.seats.get(k).map_or(0, |&s| s as i64))).collect();
    d.set_item("returns", PyArray1::from_vec(py, returns).reshape([n, p])?)?;
    d.set_item("seats", PyArray1::from_vec(py, seats).reshape([n, p])?)?;
    d.set_item("lengths", PyArray1::from_iter(py, outcomes.iter().map(|o| o.length as i64)))?;
    d.set_item("success", PyArray1::from_iter(py, outcomes.iter().map(|o| o.success)))?;
    d.set_item("truncated", PyArray1::from_iter(py, outcomes.iter().map(|o| o.truncated)))?;
    d.set_item("actions", PyList::new(py, outcomes.iter().map(|o| o.actions.clone()))?)?;
    if record {
        let rows = rec.len();
        let (a, o, z) =
            (l.num_actions, if l.sparse() { 0 } else { l.obs_size }, if l.sparse() { l.nnz_max } else { 0 });
        d.set_item("obs", PyArray1::from_vec(py, rec.obs).reshape([rows, o])?)?;
        d.set_item("obs_indices", PyArray1::from_vec(py, rec.indices).reshape([rows, z])?)?;
        d.set_item("obs_counts", PyArray1::from_vec(py, rec.counts))?;
        d.set_item("masks", PyArray1::from_vec(py, rec.masks).reshape([rows, a])?)?;
        d.set_item("policy", PyArray1::from_vec(py, rec.policy).reshape([rows, a])?)?;
        d.set_item("value", PyArray1::from_vec(py, rec.value))?;
        d.set_item("player", PyArray1::from_vec(py, rec.player))?;
        d.set_item("game", PyArray1::from_iter(py, rec.game.iter().map(|&g| g as i64)))?;
    }
    Ok(d)
}

/// One search from env `slot` of `games` with `agent`. Returns (visits [A], value for the
/// player to move, best action (-1 if none), priors [A], q [A] for the player to move (NaN
/// unvisited)). A search with no network runs inside the env's plugin unless `in_plugin`
/// is false (the same result, driven from here: for tests).
#[pyfunction]
#[pyo3(signature = (games, slot, scratch, agent, seed, in_plugin=true))]
#[allow(clippy::type_complexity)]
pub fn search<'py>(
    py: Python<'py>, games: &Batch, slot: usize, scratch: &Batch, agent: &Bound<'py, PyDict>, seed: u64,
    in_plugin: bool,
) -> PyResult<(Bound<'py, PyArray1<f32>>, f64, i64, Bound<'py, PyArray1<f32>>, Bound<'py, PyArray1<f32>>)> {
    let agent = self::agent(agent, &games.layout)?;
    let n = games.sizes.num_envs;
    if slot >= n {
        return Err(PyValueError::new_err(format!("env {slot} is outside 0..{n}")));
    }
    let (mut g, mut s) = hold(py, games, scratch)?;
    let scratch_len = scratch.sizes.num_envs;
    let (mut root, mut work) = (g.envs.envs(0..n).map_err(to_py)?, s.envs.envs(0..scratch_len).map_err(to_py)?);
    let found = crate::error::detached(py, || match in_plugin {
        true => core_search::search(&mut root, slot, &mut work, &agent, seed),
        false => core_search::search_here(&mut root, slot, &mut work, &agent, seed),
    })?;
    let best = found.best.map_or(-1, i64::from);
    Ok((
        PyArray1::from_vec(py, found.visits),
        found.value,
        best,
        PyArray1::from_vec(py, found.priors),
        PyArray1::from_vec(py, found.q),
    ))
}
