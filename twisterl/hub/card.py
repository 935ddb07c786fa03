"""The model card (README.md) of a bundle, and the card of its static Space.

The metadata follows the Hub's rules as huggingface_sb3 and CleanRL write them:
`library_name`, tags (`reinforcement-learning`, the env's name, the algorithm), and a
`model-index` whose results are `reinforcement-learning` tasks on a "dataset" named after
the env, with `mean_reward` as "mean +/- std"."""

from __future__ import annotations

import json
from typing import Optional

ALGO_NAMES = {"ppo": "PPO", "az": "AlphaZero"}


def eval_results(evals: list, env: str, algo: str) -> list:
    """`huggingface_hub.EvalResult`s of `twisterl eval`'s results (`PuzzleResult` or `MatchResult`)."""
    from huggingface_hub import EvalResult
    out = []

    def result(metric: str, value, name: str, config: Optional[str] = None) -> None:
        out.append(EvalResult(task_type="reinforcement-learning", task_name="reinforcement-learning",
                              dataset_type=env, dataset_name=env, dataset_config=config, metric_type=metric,
                              metric_name=name, metric_value=value, verified=False))

    for r in evals:
        if hasattr(r, "success"):
            config = f"difficulty={r.difficulty}"
            if r.mean_return is not None:
                std = f" +/- {r.std_return:.2f}" if getattr(r, "std_return", None) is not None else ""
                result("mean_reward", f"{r.mean_return:.2f}{std}", "mean_reward", config)
            result("success_rate", round(float(r.success), 4), "success rate", config)
        else:
            against = r.opponent.split(" (")[0].replace(" ", "_")
            result(f"score_vs_{against}", round(float(r.score), 4), f"score vs {r.opponent}")
    return out


def model_card(repo_id: str, saved: dict, meta: dict, evals: list, files: dict, space_id: Optional[str],
               version: str) -> str:
    """README.md of a bundle: the metadata block, then what the model is, its evaluation,
    how to use it, its training and its files."""
    from huggingface_hub import ModelCard, ModelCardData
    env = saved["env"]
    algo = saved.get("algo", "ppo")
    algo_name = ALGO_NAMES.get(algo, algo)
    model_name = f"{algo_name} {env}"
    data = ModelCardData(library_name="twisterl", model_name=model_name,
                         tags=["reinforcement-learning", env, "twisterl", algo_name.lower()],
                         eval_results=eval_results(evals, env, algo) or None)
    lines = [f"# {model_name}", "",
             f"A {algo_name} agent for the `{env}` environment, trained with TwisteRL {version}. The environment itself ships as source, "
             "[`env.twl`](env.twl): loading this repo checks and compiles it locally, so nothing here runs code "
             "you have not compiled yourself, and the policy is safetensors (no pickle).", ""]
    lines += ["## Evaluation", ""]
    if evals:
        for r in evals:
            if hasattr(r, "success"):
                shown = f"success {r.success:.3f}"
                if r.mean_return is not None:
                    std = f" ± {r.std_return:.3f}" if getattr(r, "std_return", None) is not None else ""
                    shown += f", return {r.mean_return:+.3f}{std}"
                lines.append(f"- {r.episodes} episodes at difficulty {r.difficulty} ({r.how}): {shown}, "
                             f"mean length {r.mean_length:.1f}")
            else:
                lines.append(f"- {r.player} vs {r.opponent}, {r.games} games: {r.wins} wins, {r.draws} draws, "
                             f"{r.losses} losses (score {r.score:.3f})")
        lines += ["", f"Measured by `twisterl push` with `twisterl eval`; reproduce it with "
                      f"`twisterl eval hf://{repo_id}`.", ""]
    else:
        lines += ["Not evaluated when it was pushed; run `twisterl eval hf://" + repo_id + "`.", ""]
    lines += ["## Use it", "", "```sh", "pip install 'twisterl[hub]'",
              f"twisterl eval hf://{repo_id}                       # evaluate the policy",
              f"twisterl play hf://{repo_id} --policy hf://{repo_id}   # watch it play in the terminal",
              f"twisterl pull {repo_id} --out {env.lower()}-run          # the files, checked, as a run dir",
              "```", "", "```python", "import twisterl", "",
              f'agent = twisterl.load("hf://{repo_id}")   # checked, env compiled locally',
              "env = agent.make_env()", "obs, info = env.reset(seed=0)",
              "action = agent.act(env, obs, info)", "```", ""]
    if space_id or "index.html" in files:
        lines += ["## In the browser", ""]
        if space_id:
            lines.append(f"Watch the agent or play yourself: [the Space](https://huggingface.co/spaces/{space_id}).")
        lines += ["`index.html` with `pkg/` and `raw/` is the WebAssembly player `twisterl export` writes; serve "
                  "the repo's files as they are (`python -m http.server`) to play it locally.", ""]
    conf = saved.get("config", {})
    lines += ["## Training", ""]
    if "progress.png" in files:
        lines += ["![Training progress](progress.png)", ""]
    facts = [("algorithm", algo_name), ("params", json.dumps(saved.get("params", {}), sort_keys=True)),
             ("observation size", saved.get("obs_size")), ("actions", saved.get("num_actions")),
             ("network", json.dumps(saved.get("policy")) if saved.get("policy") else None),
             ("best checkpoint", f"iteration {meta.get('iteration')}, difficulty {meta.get('difficulty')}"),
             ("env steps", meta.get("env_steps")), ("seed", conf.get("seed"))]
    lines += ["| | |", "|---|---|"] + [f"| {k} | `{v}` |" for k, v in facts if v is not None] + [""]
    lines += ["The full config is [`config.json`](config.json); per-iteration metrics are "
              "[`metrics.csv`](metrics.csv).", "", "## Files", "",
              "`twisterl.json` records every file's sha256 and size; loading refuses a bundle whose files differ, "
              "that holds files it does not list, symlinks or pickles.", "", "| file | bytes |", "|---|---|"]
    lines += [f"| `{name}` | {entry['size']} |" for name, entry in sorted(files.items())]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))


def space_card(space_id: str, repo_id: str, env: str, algo: str) -> str:
    """README.md of the static Space: the Space's metadata and a line pointing at the model."""
    from huggingface_hub import SpaceCard, SpaceCardData
    algo_name = ALGO_NAMES.get(algo, algo)
    data = SpaceCardData(title=f"{env} ({algo_name})"[:60], sdk="static", app_file="index.html",
                         models=[repo_id], tags=["reinforcement-learning", env, "twisterl"],
                         emoji="🎮", colorFrom="indigo", colorTo="blue", pinned=False,
                         short_description=f"Watch a {algo_name} agent play {env}, or play it"[:60])
    body = (f"# {env}\n\nThe browser player of [{repo_id}](https://huggingface.co/{repo_id}): the `{env}` env and "
            f"its {algo_name} policy compiled to WebAssembly by `twisterl export`. Watch the agent, or play "
            "yourself.\n")
    return str(SpaceCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))
