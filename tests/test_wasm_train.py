"""Training inside the WebAssembly package (`twisterl export --train`), in node: the
`Trainer` class runs the runtime core's PPO loop and learns the 8-puzzle's curriculum; its
policy travels as a policy file; bad settings are readable errors. The browser's Train
button is tested in tests/test_browser.py."""

from __future__ import annotations

import json

import pytest

from twisterl.wasm.export import ExportError, export_wasm
from wasm_support import NODE_PRELUDE, ROOT, SMALL_PUZZLE_TRAINING, exported, node, require_tools


@pytest.fixture(scope="module")
def trainable(build_cache):
    return exported("puzzle", train=SMALL_PUZZLE_TRAINING)


TRAIN = NODE_PRELUDE + r"""
const fields = (p) => ({ iteration: p.iteration, difficulty: p.difficulty, successRate: p.successRate,
  episodes: p.episodes, envSteps: p.envSteps, totalEnvSteps: p.totalEnvSteps, policyLoss: p.policyLoss,
  entropy: p.entropy, nextDifficulty: p.nextDifficulty, finished: p.finished });

const t = new mod.Trainer();
out.config = JSON.parse(t.config);
out.history = [];
while (!t.finished && t.iteration < 200) out.history.push(fields(t.iterate()));
out.finished = t.finished;

// The same seed gives the same run; another seed another one.
const again = new mod.Trainer(), other = new mod.Trainer({ seed: 7 });
out.repeat = [fields(again.iterate()), fields(again.iterate())];
out.other = fields(other.iterate());

// The policy, as an object and as a policy file, plays the same.
const env = new mod.Env({ seed: 3, difficulty: 8 });
env.reset();
const a = t.policy(), b = mod.Policy.fromSafetensors(t.policyBytes());
out.meta = JSON.parse(b.meta);
out.sameLogits = Array.from(a.logits(env.observation())).join() === Array.from(b.logits(env.observation())).join();
// The trained policy solves scrambles at the top difficulty.
env.setPolicy(b);
let solved = 0;
for (let seed = 0; seed < 50; seed++) {
  env.reset(seed);
  while (!env.done) env.agentStep({ deterministic: true });
  if (env.success) solved += 1;
}
out.solved = solved / 50;
// Training can go on from a policy, with settings over the recipe.
const more = mod.Trainer.fromPolicy(b, { config: { difficulty: 8, num_envs: 32 } });
out.more = fields(more.iterate());
out.moreConfig = JSON.parse(more.config);
process.stdout.write(JSON.stringify(out));
"""


def test_the_package_trains_the_puzzle_curriculum_in_node(trainable, tmp_path):
    script = tmp_path / "train.mjs"
    script.write_text(TRAIN)
    out = json.loads(node(script, str(trainable.out_dir / "pkg" / "env.js"), str(trainable.wasm)))
    # The recipe is the config `twisterl train` resolved, with the file's keys.
    assert out["config"]["num_envs"] == 128 and out["config"]["diff_max"] == 8 and out["config"]["seed"] == 0
    history = out["history"]
    assert out["finished"], history[-1]
    assert history[-1]["difficulty"] == 8 and history[-1]["successRate"] >= 0.85
    assert all(h["envSteps"] == 128 * 32 for h in history)
    assert history[-1]["totalEnvSteps"] == 128 * 32 * len(history)
    # The curriculum only climbs, one level at a time, after a solved iteration.
    for prev, h in zip(history, history[1:]):
        assert h["difficulty"] == prev["nextDifficulty"] in (prev["difficulty"], prev["difficulty"] + 1)
    assert out["repeat"] == history[:2], "the same seed gives the same run"
    assert out["other"] != history[0]
    assert out["sameLogits"]
    assert out["meta"]["env"] == "SlidingPuzzle" and out["meta"]["difficulty"] == "8"
    assert out["meta"]["iteration"] == str(len(history))
    assert out["solved"] >= 0.7, out["solved"]
    assert out["moreConfig"]["num_envs"] == 32 and out["more"]["difficulty"] == 8
    assert out["more"]["successRate"] >= 0.6, "training from a policy starts from what it learnt"


ERRORS = NODE_PRELUDE + r"""
attempt("unknown setting", () => new mod.Trainer({ config: { num_env: 4 } }));
attempt("setting of the wrong kind", () => new mod.Trainer({ config: { norm_adv: 1 } }));
attempt("setting out of range", () => new mod.Trainer({ config: { gamma: 2 } }));
attempt("zero envs", () => new mod.Trainer({ config: { num_envs: 0 } }));
attempt("unknown option", () => new mod.Trainer({ sed: 1 }));
attempt("bad seed", () => new mod.Trainer({ seed: -1 }));
attempt("params the network does not fit", () => new mod.Trainer({ params: { size: 4 } }));
attempt("a policy file that is not one", () => mod.Policy.fromSafetensors(new Uint8Array([1, 2, 3])));
attempt("an RND bonus", () => new mod.Trainer({ config: { intrinsic: "rnd" } }));
attempt("an unknown bonus", () => new mod.Trainer({ config: { intrinsic: "counts" } }));
attempt("a bonus of the wrong kind", () => new mod.Trainer({ config: { intrinsic: 1 } }));
attempt("a negative bonus weight", () => new mod.Trainer({ config: { intrinsic_coef: -1 } }));
const t = new mod.Trainer({ config: { num_envs: 8, num_steps: 4 } });
const plain = t.iterate();
out.still_works = plain.envSteps;
out.no_bonus = plain.intrinsic;
// The count bonus: 1 / sqrt(visits) of each step's next observation, so between 0 and 1.
const counted = new mod.Trainer({ config: { num_envs: 8, num_steps: 4, intrinsic: "count" } });
out.bonus = [counted.iterate().intrinsic, counted.iterate().intrinsic];
process.stdout.write(JSON.stringify(out));
"""


def test_trainer_errors_are_readable(trainable, tmp_path):
    script = tmp_path / "errors.mjs"
    script.write_text(ERRORS)
    out = json.loads(node(script, str(trainable.out_dir / "pkg" / "env.js"), str(trainable.wasm)))
    expected = {
        "unknown setting": "unknown training setting `num_env`", "setting of the wrong kind": "true or false",
        "setting out of range": "gamma must be between 0 and 1", "zero envs": "`num_envs` must be an int of at least 1",
        "unknown option": "unknown option `sed`", "bad seed": "seed",
        "params the network does not fit": "observations of 81 values, but this env has 256",
        "a policy file that is not one": "safetensors",
        "an RND bonus": "no \"rnd\"", "an unknown bonus": "must be \"none\" or \"count\"",
        "a bonus of the wrong kind": "must be \"none\" or \"count\", not 1",
        "a negative bonus weight": "intrinsic_coef must be a non-negative number",
    }
    for name, fragment in expected.items():
        assert out[name].startswith("Error: "), (name, out[name])
        assert fragment in out[name], (name, out[name])
    assert out["still_works"] == 32
    assert out["no_bonus"] is None, "no bonus: NaN (null in JSON)"
    first, second = out["bonus"]
    assert 0 < second < first <= 1, "visits accumulate over iterations, so the bonus fades"


def test_export_train_refuses_what_the_page_cannot_do(build_cache, tmp_path):
    require_tools()
    config = tmp_path / "norm.json"
    config.write_text(json.dumps({"norm_obs": True, "network": "actor_critic"}))
    with pytest.raises(ExportError, match="does not do norm_obs"):
        export_wasm(str(ROOT / "examples" / "cartpole.twl"), str(tmp_path / "out"), train=True,
                    config_path=str(config))
    with pytest.raises(ExportError, match="--config and --seed are for --train"):
        export_wasm(str(ROOT / "examples" / "puzzle.twl"), str(tmp_path / "out"), config_path=str(config))
    assert not (tmp_path / "out" / "pkg").exists()


def test_the_bundle_says_the_page_can_train(trainable):
    bundle = json.loads((trainable.out_dir / "bundle.json").read_text())
    assert bundle["train"]["config"]["num_envs"] == 128
    assert bundle["train"]["notes"] == []
    assert (trainable.out_dir / "train-worker.js").is_file() and (trainable.out_dir / "training.js").is_file()
    assert "Trainer" in (trainable.out_dir / "pkg" / "env.d.ts").read_text()


def test_the_recipe_says_whether_the_env_has_a_curriculum_and_leaves_out_what_the_auto_config_adds(
        build_cache, tmp_path):
    """Taxi does not read `difficulty` (no curriculum: the page's difficulty stays put), and the
    auto config's count bonus goes into the page's recipe as it is; an RND bonus, which the
    page does not have, is refused when the user's config asks for it."""
    from twisterl.wasm.training import TrainingRecipeError, browser_training
    taxi = browser_training(str(ROOT / "examples" / "taxi.twl"))
    assert taxi.settings()["curriculum"] is False
    assert taxi.settings()["intrinsic"] == "count" and taxi.settings()["intrinsic_coef"] == 0.1
    assert taxi.notes == ()
    assert browser_training(str(ROOT / "examples" / "puzzle.twl")).settings()["intrinsic"] == "none"
    assert browser_training(str(ROOT / "examples" / "puzzle.twl")).settings()["curriculum"] is True
    config = tmp_path / "rnd.json"
    config.write_text(json.dumps({"intrinsic": "rnd"}))
    with pytest.raises(TrainingRecipeError, match="does not do intrinsic 'rnd'.*rnd.json"):
        browser_training(str(ROOT / "examples" / "taxi.twl"), str(config))
