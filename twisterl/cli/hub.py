"""`twisterl push` and `twisterl pull`, and the `hf://` references (and bundle folders)
that `eval`, `play` and `export` accept wherever they take a run dir or a .twl file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional


def _hub():
    """twisterl.hub, which needs torch, safetensors and huggingface_hub (the `hub` extra)."""
    for module in ("torch", "safetensors", "huggingface_hub"):
        try:
            __import__(module)
        except ImportError:
            raise RuntimeError(f"this needs {module}, which is not installed: pip install 'twisterl[hub]'") from None
    from .. import hub
    return hub


def _is_bundle(text: str) -> bool:
    return text.startswith("hf://") or (Path(text) / "twisterl.json").is_file()


def run_ref(text: Optional[str]) -> Optional[str]:
    """The run dir to read for a RUN_DIR argument: an `hf://` reference or a bundle folder
    is downloaded (if need be) and checked; a plain run dir is itself."""
    if text is None or not _is_bundle(text):
        return text
    return _hub().resolve_run(text)


def source_ref(text: str) -> str:
    """The .twl file for a FILE argument: `hf://user/name` gives the bundle's checked env.twl."""
    return _hub().resolve_source(text) if _is_bundle(text) else text


def cmd_push(args: argparse.Namespace) -> int:
    hub = _hub()
    done = hub.push(args.run_dir, args.repo, private=args.private, revision=args.revision, space=args.space,
                    eval_episodes=args.eval_episodes, player=not args.no_player,
                    log=lambda line: print(line, file=sys.stderr))
    m = done.manifest
    print(f"{args.run_dir}: {m['env']} ({m['algo']}) pushed to hf://{done.repo}"
          f"{'@' + args.revision if args.revision else ''}: {done.url}")
    print(f"  commit: {done.commit_url}")
    for r in done.evals:
        if hasattr(r, "success"):
            ret = "" if r.mean_return is None else f", return {r.mean_return:+.3f}"
            print(f"  model card: {r.episodes} episodes at difficulty {r.difficulty}: success {r.success:.3f}{ret}")
        else:
            print(f"  model card: vs {r.opponent}: score {r.score:.3f}")
    if done.space:
        print(f"  Space: {done.space_url}")
    print(f"  load it: twisterl eval hf://{done.repo}, or twisterl.load(\"hf://{done.repo}\")")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    hub = _hub()
    done = hub.pull(args.repo, args.revision, args.out)
    m = done.manifest
    checkpoint = m.get("checkpoint", {})
    print(f"{done.ref}: {m['env']} ({m['algo']}), difficulty {checkpoint.get('difficulty')}, "
          f"{len(m['files'])} files checked against the manifest, env.twl compiled, policy checked")
    print(f"  files: {done.folder}")
    use = args.out if args.out else done.ref
    print(f"  use it: twisterl eval {use}   twisterl play {use} --policy {use}")
    return 0
