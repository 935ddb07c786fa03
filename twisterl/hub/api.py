"""Push a run to the Hub, pull one, load one: `push`, `pull`, `load`, and `resolve_run`,
which turns an `hf://` reference (or a bundle folder) into a checked run dir for the
commands that take one."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..train.rundir import CheckpointError, RunDir, env_identity, find_run, read_header
from .bundle import (MANIFEST, BundleError, Verified, check_listing, make_manifest, materialize, verify_bundle)
from .transport import HubError, download, is_hub_ref, parse_ref, twisterl_version, upload

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# ---------------------------------------------------------------- checking a run against its env


_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


def check_shapes(best: Path, saved: dict, desc: dict, ident: dict, name: str, where: str) -> None:
    """The policy fits the compiled env: config.json's sizes and the network description
    match the env's observation and actions, and every tensor of the checkpoint has the
    name, shape and dtype of the network's (checked from the header, before any weight is
    read or any network is allocated)."""
    import torch

    from ..train.nets import build_policy
    for key in ("obs_size", "num_actions"):
        if saved.get(key) != ident[key]:
            raise BundleError(f"{where}: config.json has {key} {saved.get(key)!r}, but {name} compiled from env.twl "
                              f"has {ident[key]}")
    sizes = {"obs_size": ident["obs_size"], "num_actions": ident["num_actions"], "obs_shape": ident["obs_shape"]}
    for key, value in sizes.items():
        if key in desc and desc[key] != value:
            raise BundleError(f"{where}: config.json's network (`policy`) has {key} {desc[key]!r}, but {name} "
                              f"compiled from env.twl has {value!r}")
    try:
        with torch.device("meta"):
            net = build_policy(desc)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{where}: config.json's network (`policy`) cannot be built: {exc}") from None
    want = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in net.state_dict().items()}
    header = read_header(best)
    have = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("shape"), list):
            raise BundleError(f"{where}: best.safetensors: the header entry of tensor {key!r} is malformed")
        have[key] = (entry["shape"], _DTYPES.get(entry.get("dtype"), entry.get("dtype")))
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"unexpected {', '.join(extra)}"]
                                                                          if extra else [])
        raise BundleError(f"{where}: best.safetensors does not hold the network config.json describes: "
                          + "; ".join(parts))
    for key in sorted(want):
        if have[key] != want[key]:
            raise BundleError(f"{where}: best.safetensors: tensor {key} is {have[key][1]} {have[key][0]}, but the "
                              f"network for {name} needs {want[key][1]} {want[key][0]}")


def check_run(run_dir: Path, where: str):
    """A run dir read back and checked against its own env.twl, which is checked and
    compiled here: (env class, source, network with the best weights, checkpoint metadata,
    config.json). Messages name `where` and the file, not our private copy."""
    from ..train.checkpoints import load_policy, run_config, run_env
    run = RunDir(Path(run_dir))

    def named(exc: Exception) -> BundleError:
        text = str(exc).replace(f"{run.path}/", "").replace(str(run.path), where)
        return BundleError(text if text.startswith(where) else f"{where}: {text}")

    try:
        saved, config = run_config(run)
        cls, source = run_env(run)
        params = saved.get("params", {})
        try:
            ident = env_identity(cls, params)
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{where}: config.json's params {params} do not fit {cls.name}: {exc}") from None
        desc = saved.get("policy") or {"kind": "basic", "obs_size": saved["obs_size"],
                                       "num_actions": saved["num_actions"], "embedding_size": config.embedding_size,
                                       "common_layers": config.common_layers}
        if not (run.path / "best.safetensors").is_file():
            raise BundleError(f"{where} has no best.safetensors: the run has no best checkpoint yet (train longer)")
        check_shapes(run.path / "best.safetensors", saved, desc, ident, cls.name, where)
        net, meta, cfg = load_policy(run, "best", cls=cls, source=source, what=f"{where}/env.twl")
    except BundleError:
        raise
    except CheckpointError as exc:
        raise named(exc) from None
    net.eval()
    meta.pop("_tensors", None)
    return cls, source, net, meta, cfg


# ---------------------------------------------------------------- building a bundle


def build_bundle(run_dir: Union[str, Path], out: Union[str, Path], repo_id: str, *, eval_episodes: int = 100,
                 player: bool = True, space_id: Optional[str] = None, target_dir: Optional[Path] = None,
                 log: Log = _quiet) -> tuple[Verified, list]:
    """Write the bundle of a run into the new folder `out` (see `bundle.py`): its files, an
    evaluation of `eval_episodes` episodes (0: none) for the model card, the WebAssembly
    player (unless not `player`), the manifest and the card (linking to the Space
    `space_id`, if given); then check the folder as a
    download would be. Returns it checked, with the evaluation's results."""
    from .card import model_card
    run = find_run(str(run_dir))
    if not (run.path / "best.safetensors").is_file():
        raise CheckpointError(f"{run.path} has no best.safetensors: the run has no best checkpoint yet (train longer)")
    cls, _, _, meta, saved = check_run(run.path, str(run.path))
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} is not empty; a bundle is built in a new folder")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("env.twl", "config.json", "best.safetensors", "metrics.csv", "progress.png"):
        if (run.path / name).is_file():
            shutil.copyfile(run.path / name, out / name)
    evals: list = []
    if eval_episodes:
        from ..train.run_eval import evaluate_run
        log(f"evaluating {run.path} on {eval_episodes} episodes for the model card")
        evals = evaluate_run(str(run.path), episodes=eval_episodes)
    if player:
        from ..wasm.export import ExportError, export_wasm
        log(f"exporting {cls.name} and its policy to WebAssembly for the browser player")
        try:
            export_wasm(str(out / "env.twl"), str(out), str(run.path), target_dir=target_dir)
        except ExportError as exc:
            raise ExportError(f"{exc}\n(push with --no-player to upload the run without the browser player)") from None
    version = twisterl_version()
    info = {"created_by": f"twisterl {version}", "env": cls.name, "algo": saved.get("algo", "ppo"),
            "params": saved.get("params", {}),
            "checkpoint": {k: meta.get(k) for k in ("difficulty", "iteration", "env_steps", "success_rate")},
            "eval": [{"kind": type(r).__name__, **asdict(r)} for r in evals], "player": player}
    manifest = make_manifest(out, info)
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out / "README.md").write_text(model_card(repo_id, saved, meta, evals, manifest["files"], space_id, version))
    return verify_bundle(out, str(out)), evals


def _space_folder(bundle: Path, dest: Path, space_id: str, repo_id: str, manifest: dict) -> Path:
    """The bundle's files with the Space's card as README.md."""
    from .card import space_card
    shutil.copytree(bundle, dest)
    (dest / "README.md").write_text(space_card(space_id, repo_id, manifest["env"], manifest["algo"]))
    return dest


@dataclass
class Pushed:
    """What `push` uploaded: the repo and its commit, the Space (if any), the manifest and
    the evaluation in the model card."""
    repo: str
    commit_url: str
    manifest: dict
    evals: list
    space: Optional[str] = None
    space_commit_url: Optional[str] = None

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}"

    @property
    def space_url(self) -> Optional[str]:
        return f"https://huggingface.co/spaces/{self.space}" if self.space else None


def push(run_dir: Union[str, Path], repo: str, *, private: bool = False, revision: Optional[str] = None,
         space: Union[None, bool, str] = None, eval_episodes: int = 100, player: bool = True,
         token: Optional[str] = None, api: Any = None, target_dir: Optional[Path] = None,
         log: Log = _quiet) -> Pushed:
    """Upload a run as a bundle to the model repo `repo` (`user/name`, created if needed),
    on branch `revision` (default main). `space` (True: the same name, or a Space id) also
    creates a static Space from the same files, with a Space card. `api` stands in for
    `huggingface_hub.HfApi(token=token)`."""
    ref = parse_ref(repo)
    if ref.revision is not None:
        if revision is not None and revision != ref.revision:
            raise HubError(f"{repo} names revision {ref.revision!r} and --revision {revision!r}; give one")
        revision = ref.revision
    space_id = None
    if space:
        if not player:
            raise ValueError("--space needs the browser player; drop --no-player")
        if revision is not None:
            raise ValueError("a Space serves its main branch only: push --revision without --space, or push to "
                             "main with --space")
        space_id = ref.repo if space is True else parse_ref(space).repo
    if eval_episodes < 0:
        raise ValueError(f"the evaluation needs 0 or more episodes, not {eval_episodes}")
    with tempfile.TemporaryDirectory(prefix="twisterl-push-") as tmp:
        bundle, evals = build_bundle(run_dir, Path(tmp) / "bundle", ref.repo, eval_episodes=eval_episodes,
                                     player=player, space_id=space_id, target_dir=target_dir, log=log)
        message = (f"twisterl push: {bundle.manifest['env']} ({bundle.manifest['algo']}), "
                   f"difficulty {bundle.manifest['checkpoint'].get('difficulty')}")
        log(f"uploading {len(bundle.manifest['files']) + 2} files to hf://{ref.repo}")
        url = upload(bundle.folder, ref.repo, private=private, revision=revision, token=token, message=message,
                     api=api)
        result = Pushed(ref.repo, url, bundle.manifest, evals)
        if space_id:
            folder = _space_folder(bundle.folder, Path(tmp) / "space", space_id, ref.repo, bundle.manifest)
            log(f"uploading the player to the Space {space_id}")
            result.space = space_id
            result.space_commit_url = upload(folder, space_id, repo_type="space", private=private, revision=revision,
                                             token=token, message=message, space_sdk="static", api=api)
    return result


# ---------------------------------------------------------------- pulling and loading


def _private_copy(bundle: Verified, slug: str) -> Path:
    """Where the checked run files of a bundle live: the build cache, by manifest."""
    from ..build import cache_dir
    digest = hashlib.sha256(json.dumps(bundle.manifest, sort_keys=True).encode()).hexdigest()[:24]
    return materialize(bundle, cache_dir() / "hub" / slug / digest)


@dataclass
class Pulled:
    """A bundle downloaded and checked: its reference, the folder huggingface_hub wrote
    (its cache's snapshot, or `local_dir`), our checked run dir and the manifest."""
    ref: str
    folder: Path
    run_dir: Path
    manifest: dict


def pull(repo: str, revision: Optional[str] = None, out: Union[None, str, Path] = None,
         token: Optional[str] = None) -> Pulled:
    """Download a bundle (`user/name` or `hf://user/name[@revision]`) with huggingface_hub
    (into its cache, or into `out`), refuse it if any check fails (see `bundle.py`), and
    check its env and policy: the env.twl is checked and compiled locally, the policy's
    shapes checked against it."""
    ref = parse_ref(repo, revision)
    where = str(ref)
    folder, blobs = download(ref, None if out is None else Path(out), token,
                             check_listing=lambda files: check_listing(files, where))
    bundle = verify_bundle(folder, where, blobs)
    run_dir = _private_copy(bundle, ref.repo.replace("/", "--"))
    check_run(run_dir, where)
    return Pulled(where, folder, run_dir, bundle.manifest)


def resolve_run(text: str, token: Optional[str] = None) -> str:
    """The run dir a command should read for `text`: for an `hf://` reference or a bundle
    folder, a checked private copy (see `pull`); anything else as it is."""
    if is_hub_ref(text):
        return str(pull(text, token=token).run_dir)
    path = Path(text)
    if (path / MANIFEST).is_file():
        bundle = verify_bundle(path, str(path))
        run_dir = _private_copy(bundle, "local")
        check_run(run_dir, str(path))
        return str(run_dir)
    return text


def resolve_source(text: str, token: Optional[str] = None) -> str:
    """The .twl file for `text`: an `hf://` reference or a bundle folder gives its checked
    env.twl; anything else is a path as it is."""
    if is_hub_ref(text) or (Path(text) / MANIFEST).is_file():
        return str(Path(resolve_run(text, token)) / "env.twl")
    return text


@dataclass
class Pretrained:
    """A trained run, loaded and checked: the env class compiled from its env.twl, the
    policy network (torch, in eval mode) with the best checkpoint's weights, the run's
    config.json and the checkpoint's metadata (difficulty, iteration, success rate...).
    `make_env()` makes the env it was trained on, `act` picks the policy's action."""
    ref: str
    run_dir: Path
    env_class: Any
    policy: Any
    config: dict
    checkpoint: dict
    manifest: Optional[dict] = None
    _agent: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.env_class.name

    @property
    def params(self) -> dict:
        """The params the run trained with."""
        return dict(self.config.get("params", {}))

    @property
    def difficulty(self) -> int:
        return int(self.checkpoint.get("difficulty", 0))

    def make_env(self, **kwargs):
        """An env with the run's params at its checkpoint's difficulty; `kwargs` override them."""
        return self.env_class(**{**self.params, "difficulty": self.difficulty, **kwargs})

    def agent(self, simulations: Optional[int] = None, **params):
        """The policy as an agent `(env, obs, info) -> action`: its most likely legal action
        (with `simulations`, or for AlphaZero runs, MCTS on its priors and values)."""
        from ..agents import policy_agent
        agent, _ = policy_agent(str(self.run_dir), self.env_class, simulations, params or None,
                                f"{self.ref}/env.twl")
        return agent

    def act(self, env, obs, info):
        """The action the policy takes in `env` (see `agent`)."""
        if self._agent is None:
            self._agent = self.agent()
        return self._agent(env, obs, info)

    def evaluate(self, episodes: int = 100, **kwargs) -> list:
        """`twisterl eval` on this run: a list of `PuzzleResult`s or `MatchResult`s."""
        from ..train.run_eval import evaluate_run
        return evaluate_run(str(self.run_dir), episodes=episodes, **kwargs)


def load(ref: Union[str, Path], revision: Optional[str] = None, token: Optional[str] = None) -> Pretrained:
    """A trained run as a `Pretrained`: from the Hub (`hf://user/name[@revision]`), from a
    bundle folder (`twisterl pull --out`), or from a local run dir. Bundles are checked file
    by file first (see `bundle.py`); every source's env.twl is checked and compiled locally
    and its policy checked against the compiled env. Nothing is unpickled."""
    text = str(ref)
    manifest = None
    if is_hub_ref(text):
        pulled = pull(text, revision, token=token)
        where, run_dir, manifest = pulled.ref, pulled.run_dir, pulled.manifest
    elif revision is not None:
        raise HubError(f"a revision is for hf:// references, not the folder {text}")
    elif (Path(text) / MANIFEST).is_file():
        bundle = verify_bundle(Path(text), text)
        where, run_dir, manifest = text, _private_copy(bundle, "local"), bundle.manifest
    else:
        where, run_dir = text, find_run(text).path
    cls, _, net, meta, saved = check_run(run_dir, where)
    return Pretrained(where, Path(run_dir), cls, net, saved, meta, manifest)
