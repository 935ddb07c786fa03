"""The Hugging Face Hub: push, pull, load, and eval/play/export from `hf://`, through
huggingface_hub's own code (its HTTP client against a local stand-in for the Hub's API,
`tests/hub_server.py`; its cache layout and offline mode; `local_dir` folders), the model
card by huggingface_hub's parsers, the Space in headless Chromium, and bundles that must be
refused: each refusal a clean error naming the file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
hf = pytest.importorskip("huggingface_hub")

from hub_server import FakeHub  # noqa: E402
from test_browser import _open, browser, serve  # noqa: E402,F401 (fixtures)
from wasm_support import require_tools, trained_puzzle  # noqa: E402

from twisterl.hub import BundleError, HubError, build_bundle, load, parse_ref, push, verify_bundle  # noqa: E402
from twisterl.hub.bundle import MANIFEST, sha256_file  # noqa: E402
from twisterl.train.rundir import CheckpointError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REPO = "tester/puzzle-ppo"


@pytest.fixture(scope="module")
def hub():
    server = FakeHub()
    yield server
    server.close()


@pytest.fixture(scope="module")
def run(build_cache) -> Path:
    return trained_puzzle()


@pytest.fixture(scope="module")
def pushed(hub, run):
    """The run pushed with its player and a Space, through huggingface_hub's HfApi."""
    require_tools()
    api = hf.HfApi(endpoint=hub.url, token="hf_test_token")
    lines: list[str] = []
    return push(run, REPO, api=api, space=True, eval_episodes=20, log=lines.append), lines


@pytest.fixture(scope="module")
def bundle(run, tmp_path_factory) -> Path:
    """A bundle folder without the player (no wasm tools needed), to damage copies of."""
    out = tmp_path_factory.mktemp("bundle") / "b"
    build_bundle(run, out, REPO, eval_episodes=0, player=False)
    return out


def _hub_env(hub, build_cache, cache: Path, offline: bool = False) -> dict:
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(cache), TWISTERL_CACHE_DIR=str(build_cache),
               HF_TOKEN="hf_test_token", HF_HUB_DISABLE_PROGRESS_BARS="1", PYTHONPATH=str(ROOT / "tests"))
    env.pop("HF_HUB_OFFLINE", None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def _script(env: dict, code: str, timeout: float = 300) -> str:
    """Python in a fresh process (huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE at
    import, as for a user); `cli(*args)` runs the CLI there and returns (code, out, err)."""
    prelude = ("import io, sys, contextlib\nfrom twisterl.cli import main\n"
               "def cli(*args, stdin=''):\n"
               "    out, err = io.StringIO(), io.StringIO()\n"
               "    sys.stdin = io.StringIO(stdin)\n"
               "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
               "        code = main([str(a) for a in args])\n"
               "    return code, out.getvalue(), err.getvalue()\n")
    proc = subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _clean(err: str) -> None:
    for bad in ("internal error", "Traceback", "a bug in twisterl"):
        assert bad not in err, err


# ---------------------------------------------------------------- push


def test_push_uploads_the_bundle_and_a_static_space(pushed, hub):
    done, lines = pushed
    files = hub.files(REPO)
    manifest = json.loads(files[MANIFEST])
    assert manifest["format"] == "twisterl-bundle" and manifest["version"] == 1
    assert manifest["env"] == "SlidingPuzzle" and manifest["algo"] == "ppo" and manifest["player"] is True
    assert set(files) == set(manifest["files"]) | {MANIFEST, "README.md", ".gitattributes"}
    for name in ("env.twl", "config.json", "best.safetensors", "metrics.csv", "progress.png", "index.html",
                 "player.js", "bundle.json", "pkg/env_bg.wasm", "pkg/env.js", "raw/slidingpuzzle.wasm"):
        assert name in manifest["files"], name
    import hashlib
    for name, entry in manifest["files"].items():
        assert hashlib.sha256(files[name]).hexdigest() == entry["sha256"] and len(files[name]) == entry["size"]
    assert files["env.twl"] == (ROOT / "examples" / "puzzle.twl").read_bytes()
    assert not any(name.endswith((".pt", ".pkl", ".bin")) for name in files)
    # The token went where huggingface_hub sends it.
    assert set(hub.auth) == {"Bearer hf_test_token"}
    assert done.url == f"https://huggingface.co/{REPO}" and done.commit_url.startswith(hub.url)
    assert any("exporting" in line for line in lines)
    # The Space: the same files, with a Space card saying sdk: static.
    space = hub.repos[("space", REPO)]
    assert space.sdk == "static" and done.space == REPO
    space_files = hub.files(REPO, kind="space")
    assert {n: d for n, d in space_files.items() if n != "README.md"} == \
           {n: d for n, d in files.items() if n != "README.md"}
    card = hf.SpaceCard(space_files["README.md"].decode())
    assert card.data.sdk == "static" and card.data.app_file == "index.html" and REPO in card.data.models


def test_the_model_card_parses_and_its_metadata_validates(pushed, hub):
    done, _ = pushed
    text = hub.files(REPO)["README.md"].decode()
    card = hf.ModelCard(text)  # raises on metadata the Hub would refuse
    data = card.data
    assert data.library_name == "twisterl"
    assert {"reinforcement-learning", "SlidingPuzzle"} <= set(data.tags)
    assert data.model_name == "PPO SlidingPuzzle"
    results = {r.metric_type: r for r in data.eval_results}
    reward = results["mean_reward"]
    assert reward.task_type == "reinforcement-learning" and reward.dataset_type == "SlidingPuzzle"
    assert re.fullmatch(r"-?\d+\.\d\d \+/- \d+\.\d\d", reward.metric_value), reward.metric_value
    evaluated = done.evals[0]
    assert reward.metric_value == f"{evaluated.mean_return:.2f} +/- {evaluated.std_return:.2f}"
    assert 0 <= results["success_rate"].metric_value <= 1
    # The model-index is the one huggingface_sb3 and CleanRL write with metadata_eval_result.
    sb3 = hf.metadata_eval_result(model_pretty_name="PPO SlidingPuzzle", task_pretty_name="reinforcement-learning",
                                  task_id="reinforcement-learning", metrics_pretty_name="mean_reward",
                                  metrics_id="mean_reward", metrics_value=reward.metric_value,
                                  dataset_pretty_name="SlidingPuzzle", dataset_id="SlidingPuzzle")
    ours = data.to_dict()["model-index"][0]
    theirs = sb3["model-index"][0]
    assert ours["name"] == theirs["name"]
    assert ours["results"][0]["task"] == theirs["results"][0]["task"]
    assert {k: ours["results"][0]["dataset"][k] for k in ("name", "type")} == theirs["results"][0]["dataset"]
    assert ours["results"][0]["metrics"][0] == theirs["results"][0]["metrics"][0]
    # Round trip through huggingface_hub's own model-index reader.
    name, again = hf.repocard_data.model_index_to_eval_results(data.to_dict()["model-index"])
    assert name == "PPO SlidingPuzzle" and [r.metric_type for r in again] == ["mean_reward", "success_rate"]
    assert "progress.png" in card.text and f"hf://{REPO}" in card.text and f"spaces/{REPO}" in card.text


def test_push_refuses_what_it_cannot_push(run, tmp_path, hub):
    empty = tmp_path / "no-best"
    shutil.copytree(run, empty, ignore=shutil.ignore_patterns("best.safetensors", "tensorboard"))
    api = hf.HfApi(endpoint=hub.url, token="hf_test_token")
    with pytest.raises(CheckpointError, match="no-best has no best.safetensors"):
        push(empty, "tester/x", api=api, player=False, eval_episodes=0)
    with pytest.raises(ValueError, match="--space needs the browser player"):
        push(run, "tester/x", api=api, player=False, space=True)
    with pytest.raises(ValueError, match="a Space serves its main branch only"):
        push(run, "tester/x", api=api, revision="dev", space=True)
    with pytest.raises(HubError, match="not a Hub model repo"):
        push(run, "tester/x/y", api=api, player=False)
    unreachable = hf.HfApi(endpoint="http://127.0.0.1:9", token="hf_test_token")
    with pytest.raises(HubError, match="tester/x: the Hub cannot be reached"):
        push(run, "tester/x", api=unreachable, player=False, eval_episodes=0)
    assert ("model", "tester/x") not in hub.repos


@pytest.mark.parametrize("text, words", [
    ("hf://alice", "not a Hub model repo"), ("hf://a/b/c", "not a Hub model repo"),
    ("hf://../etc", "not a Hub model repo"), ("hf://a/b@../x", "is not a revision"), ("hf://a--b/c", "not a Hub"),
])
def test_bad_references_are_refused(text, words):
    with pytest.raises(HubError, match=re.escape(words)):
        parse_ref(text)


def test_references_parse():
    assert parse_ref("hf://alice/puzzle@v2") == parse_ref("alice/puzzle", "v2")
    assert str(parse_ref("hf://alice/puzzle")) == "hf://alice/puzzle"


# ---------------------------------------------------------------- pull, load, eval, play, export from hf://


def test_pull_then_eval_play_load_and_export_offline_from_the_cache(pushed, hub, build_cache, tmp_path):
    cache = tmp_path / "hf-cache"
    online = _hub_env(hub, build_cache, cache)
    hub.put("tester/evil", {MANIFEST: b"{}", "model.pkl": b"\x80\x04K\x01."})
    requests_before = len(hub.requests)
    out = _script(online, f"""
code, out, err = cli("pull", "{REPO}")
assert code == 0, err
print("PULL", out)
code, out, err = cli("pull", "hf://{REPO}", "--out", {str(tmp_path / 'local')!r})
assert code == 0, err
code, out, err = cli("pull", "tester/evil")
print("EVIL", code, err)
code, out, err = cli("pull", "tester/nobody")
print("NOBODY", code, err)
code, out, err = cli("pull", "{REPO}@nope")
print("NOREV", code, err)
""")
    assert "SlidingPuzzle (ppo)" in out and "checked against the manifest" in out
    evil = out.split("EVIL ", 1)[1]
    assert evil.startswith("1 ") and "model.pkl is a .pkl file" in evil and "pickle" in evil
    asked = [r for r in hub.requests[requests_before:] if "model.pkl" in r]
    assert asked and all(r.startswith("HEAD ") for r in asked)  # its size was asked (dry run), never its bytes
    assert "NOBODY 1 " in out and "no such repo on the Hub" in out.split("NOBODY", 1)[1]
    assert "NOREV 1 " in out and "no such revision" in out.split("NOREV", 1)[1]
    # huggingface_hub's cache layout: snapshots whose files link into the repo's blobs.
    snapshots = list((cache / "models--tester--puzzle-ppo" / "snapshots").iterdir())
    assert len(snapshots) == 1 and (snapshots[0] / "best.safetensors").is_symlink()
    assert (cache / "models--tester--puzzle-ppo" / "refs" / "main").read_text() == snapshots[0].name
    # A local_dir download is a bundle folder: checked, then usable as a run dir.
    local = tmp_path / "local"
    assert (local / ".cache" / "huggingface").is_dir() and (local / "best.safetensors").is_file()
    assert load(local).name == "SlidingPuzzle"

    served = len(hub.requests)
    export = tmp_path / "web"
    out = _script(_hub_env(hub, build_cache, cache, offline=True), f"""
import twisterl
agent = twisterl.load("hf://{REPO}")
env = agent.make_env(seed=3)
obs, info = env.reset()
for _ in range(20):
    obs, r, term, trunc, info = env.step(agent.act(env, obs, info))
    if term or trunc:
        break
print("LOADED", agent.name, agent.difficulty, type(agent.policy).__name__, agent.manifest["version"], info["success"])
code, out, err = cli("eval", "hf://{REPO}", "--episodes", "16", "--deterministic")
assert code == 0, err
print("EVAL", out)
code, out, err = cli("play", "hf://{REPO}", "--policy", "hf://{REPO}", "--seed", "1", stdin="\\n\\nq\\n")
assert code == 0, err
print("PLAY", out)
code, out, err = cli("export", "hf://{REPO}", "--policy", "hf://{REPO}", "--wasm", {str(export)!r}, "--no-opt")
assert code == 0, err
print("EXPORT", out)
code, out, err = cli("eval", "hf://tester/not-cached")
print("UNCACHED", code, err)
""")
    assert hub.requests[served:] == []  # offline: nothing reached the endpoint
    assert "LOADED SlidingPuzzle 1 BasicPolicy 1 True" in out
    assert re.search(r"EVAL SlidingPuzzle at difficulty 1, 16 episodes \(deterministic\): success 1\.000", out)
    assert "agent plays" in out.split("PLAY", 1)[1]
    assert "env SlidingPuzzle exported" in out and "policy embedded" in out
    assert json.loads((export / "bundle.json").read_text())["policy"]["difficulty"] == 1
    uncached = out.split("UNCACHED", 1)[1]
    assert uncached.startswith(" 1 ") and "not (completely) in the local Hugging Face cache" in uncached
    assert "HF_HUB_OFFLINE is set" in uncached


def test_a_revision_is_pulled_as_named(pushed, hub, run, build_cache, tmp_path):
    api = hf.HfApi(endpoint=hub.url, token="hf_test_token")
    push(run, REPO, api=api, revision="tiny", player=False, eval_episodes=0)
    assert "index.html" in hub.files(REPO) and "index.html" not in hub.files(REPO, revision="tiny")
    out = _script(_hub_env(hub, build_cache, tmp_path / "hf"), f"""
import twisterl
agent = twisterl.load("hf://{REPO}@tiny")
print("FILES", sorted(agent.manifest["files"]), agent.manifest["player"])
""")
    assert "FILES ['best.safetensors', 'config.json', 'env.twl', 'metrics.csv', 'progress.png'] False" in out


# ---------------------------------------------------------------- the Space in a browser


def test_the_space_plays_in_headless_chromium(pushed, hub, browser, serve, tmp_path):  # noqa: F811
    site = tmp_path / "space"
    for name, data in hub.files(REPO, kind="space").items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(data)
    page, errors = _open(browser, serve(site))
    assert page.get_attribute("body", "data-state") == "ready"
    assert page.text_content("#title") == "SlidingPuzzle"
    assert "with a trained policy" in page.text_content("#subtitle")
    page.fill("#speed", "30")
    page.dispatch_event("#speed", "input")
    page.click("#play")
    page.wait_for_function("Number(document.getElementById('episodes').textContent) >= 3", timeout=30_000)
    page.click("#play")
    assert int(page.text_content("#solved")) >= 2
    assert errors == []
    page.close()


# ---------------------------------------------------------------- bundles that must be refused


def _reseal(folder: Path) -> None:
    """Rewrite the manifest's checksums to match the files, as an attacker who edits a bundle would."""
    manifest = json.loads((folder / MANIFEST).read_text())
    for name, entry in manifest["files"].items():
        if (folder / name).is_file():
            entry.update(sha256=sha256_file(folder / name), size=(folder / name).stat().st_size)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    change(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _retensor(folder: Path, change) -> None:
    """Change best.safetensors' tensors and give it a valid checkpoint checksum."""
    from safetensors.torch import load_file, save_file

    from twisterl.train.rundir import read_header, tensor_digest
    path = folder / "best.safetensors"
    tensors = load_file(str(path))
    meta = {k: v for k, v in read_header(path)["__metadata__"].items() if k != "sha256"}
    change(tensors)
    meta["sha256"] = tensor_digest(tensors, meta)
    save_file(tensors, str(path), metadata=meta)


def _pickle_policy(folder: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, folder / "best.safetensors")


def _widen(tensors: dict) -> None:
    key = next(k for k, v in tensors.items() if v.dim() == 2)
    tensors[key] = torch.zeros(tensors[key].shape[0] + 1, tensors[key].shape[1])


def _bad_twl(folder: Path) -> None:
    (folder / "env.twl").write_text((folder / "env.twl").read_text().replace("blank % size", "blnk % size", 1))


def _config(folder: Path, **changes) -> None:
    data = json.loads((folder / "config.json").read_text())
    data["policy"].update(changes)
    (folder / "config.json").write_text(json.dumps(data))


CASES = {
    "a pickle beside the policy": (lambda f: torch.save({}, f / "policy.pt"), False,
                                   ["policy.pt is a .pt file", "pickle"]),
    "a pickle as the policy": (_pickle_policy, True, ["best.safetensors holds a pickle or a zip archive"]),
    "a pickle named like a csv": (lambda f: (f / "metrics.csv").write_bytes(b"\x80\x04\x95\x00."), True,
                                  ["metrics.csv holds a pickle"]),
    "wrong shapes": (lambda f: _retensor(f, _widen), True, ["best.safetensors: tensor", "but the network for "
                                                                                        "SlidingPuzzle needs"]),
    "a network for another env": (lambda f: _config(f, obs_size=16), True,
                                  ["config.json's network (`policy`) has obs_size 16", "has 81"]),
    "traversal in the manifest": (lambda f: _manifest(f, lambda m: m["files"].update(
        {"../outside.json": {"sha256": "0" * 64, "size": 2}})), False, ["'../outside.json' leaves the bundle"]),
    "an absolute name": (lambda f: _manifest(f, lambda m: m["files"].update(
        {"/etc/passwd.json": {"sha256": "0" * 64, "size": 2}})), False, ["'/etc/passwd.json' leaves the bundle"]),
    "a symlink": (lambda f: ((f / "metrics.csv").unlink(), (f / "metrics.csv").symlink_to("/etc/hostname")), False,
                  ["metrics.csv is a symbolic link"]),
    "a symlinked folder": (lambda f: (f / "pkg").symlink_to("/etc"), False, ["pkg is a symbolic link"]),
    "an oversized file": (lambda f: (f / "env.twl").write_text("# padding\n" * 120_000), True,
                          ["env.twl is 1200000 bytes, over the limit for a .twl file (1 MiB)"]),
    "an unexpected file type": (lambda f: (f / "run.sh").write_text("echo hi\n"), False,
                                ["run.sh is of a type a twisterl bundle never holds"]),
    "a file the manifest does not list": (lambda f: (f / "extra.json").write_text("{}"), False,
                                          ["extra.json is not in the manifest"]),
    "a truncated policy": (lambda f: (f / "best.safetensors").write_bytes((f / "best.safetensors").read_bytes()[:900]),
                           False, ["best.safetensors is 900 bytes, not the"]),
    "a truncated policy, resealed": (lambda f: (f / "best.safetensors").write_bytes(
        (f / "best.safetensors").read_bytes()[:-100]), True, ["best.safetensors", "not a readable checkpoint"]),
    "a flipped byte": (lambda f: (f / "best.safetensors").write_bytes(
        (lambda b: b[:-5] + bytes([b[-5] ^ 1]) + b[-4:])((f / "best.safetensors").read_bytes())), False,
        ["best.safetensors does not match its sha256"]),
    "a .twl that fails to check": (_bad_twl, True, ["env.twl, the source this run trained on, has errors",
                                                    "blnk"]),
    "a newer format": (lambda f: _manifest(f, lambda m: m.update(version=2)), False,
                       ["bundle of format version 2, newer than this twisterl reads (version 1)", "upgrade"]),
    "no manifest format": (lambda f: _manifest(f, lambda m: m.pop("format")), False,
                           ["twisterl.json is not a twisterl bundle manifest"]),
    "a manifest without the policy": (lambda f: _manifest(f, lambda m: m["files"].pop("best.safetensors")), False,
                                      ["does not list best.safetensors"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_bundle_is_refused_naming_the_file(bundle, tmp_path, case):
    damage, reseal, words = CASES[case]
    folder = Path(shutil.copytree(bundle, tmp_path / "bundle", symlinks=True))
    damage(folder)
    if reseal:
        _reseal(folder)
    with pytest.raises(BundleError) as info:
        load(folder)
    message = str(info.value)
    assert message.startswith(str(folder)), message
    for word in words:
        assert word in message, (word, message)


def test_the_cli_refuses_a_bad_bundle_cleanly(bundle, tmp_path, capsys):
    from twisterl.cli import main
    folder = Path(shutil.copytree(bundle, tmp_path / "bundle"))
    assert main(["eval", str(folder), "--episodes", "4"]) == 0
    assert "SlidingPuzzle at difficulty" in capsys.readouterr().out
    (folder / "model.pkl").write_bytes(b"\x80\x04.")
    for argv in (["eval", str(folder)], ["play", str(folder), "--policy", str(folder)],
                 ["export", str(folder), "--wasm", str(tmp_path / "web")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        _clean(err)
        assert "model.pkl is a .pkl file" in err, err


def test_a_good_bundle_and_a_run_dir_load_alike(bundle, run):
    from_bundle, from_run = load(bundle), load(run)
    assert from_bundle.manifest["files"]["env.twl"]["sha256"] == sha256_file(run / "env.twl")
    assert from_run.manifest is None and from_bundle.difficulty == from_run.difficulty
    for key, value in from_run.policy.state_dict().items():
        assert torch.equal(value, from_bundle.policy.state_dict()[key])
    assert verify_bundle(bundle, "b").manifest["version"] == 1
    results = from_bundle.evaluate(episodes=8, deterministic=True)
    assert results[0].env == "SlidingPuzzle" and results[0].episodes == 8
    with pytest.raises(HubError, match="a revision is for hf:// references"):
        load(bundle, revision="main")
    with pytest.raises(BundleError, match="is not empty"):
        build_bundle(run, bundle, REPO, player=False)


def test_a_folder_without_a_manifest_is_no_bundle(tmp_path, run):
    with pytest.raises(BundleError, match="is not a twisterl bundle: it has no twisterl.json .*a run dir"):
        verify_bundle(run, str(run))
