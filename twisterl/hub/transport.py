"""The Hugging Face Hub, through `huggingface_hub` only: `hf://` references, downloads
(`snapshot_download`, into its cache or a `local_dir`) and uploads (`create_repo`,
`upload_folder`). Tokens, endpoints, the cache and offline mode are huggingface_hub's own
(`hf auth login`, HF_TOKEN, HF_ENDPOINT, HF_HUB_CACHE, HF_HUB_OFFLINE); every error it
raises becomes a `HubError` that says what to do."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

PREFIX = "hf://"
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")


class HubError(RuntimeError):
    """The Hub could not be reached, refused a request, or has no such repo or revision;
    or huggingface_hub is not installed."""


@dataclass(frozen=True)
class HubRef:
    """A model repo on the Hub, at a revision (a branch, tag or commit; None: main)."""
    repo: str
    revision: Optional[str] = None

    def __str__(self) -> str:
        return PREFIX + self.repo + (f"@{self.revision}" if self.revision else "")


def is_hub_ref(text: Any) -> bool:
    """Whether `text` is an `hf://` reference."""
    return isinstance(text, str) and text.startswith(PREFIX)


def parse_ref(text: str, revision: Optional[str] = None) -> HubRef:
    """`hf://user/name[@revision]` (or `user/name`), with `revision` given apart or after `@`."""
    body = text[len(PREFIX):] if text.startswith(PREFIX) else text
    rev = None
    if "@" in body:
        body, rev = body.split("@", 1)
    if rev is not None and revision is not None and rev != revision:
        raise HubError(f"{text} names revision {rev!r} and --revision {revision!r}; give one")
    rev = rev if rev is not None else revision
    if not _REPO.match(body) or ".." in body or "--" in body or body.endswith((".", "-", ".git")):
        raise HubError(f"{text!r} is not a Hub model repo: expected hf://USER/NAME[@REVISION] (letters, digits, "
                       "`-`, `_` and `.`, no `--` or `..`)")
    if rev is not None and (not _REVISION.match(rev) or ".." in rev):
        raise HubError(f"{text!r}: {rev!r} is not a revision (a branch, tag or commit hash)")
    return HubRef(body, rev or None)


def twisterl_version() -> str:
    """This twisterl's version, as its package metadata records it."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("twisterl")
    except PackageNotFoundError:
        return "unknown"


def hf():
    """The huggingface_hub module, or a `HubError` saying how to install it."""
    try:
        import huggingface_hub
    except ImportError:
        raise HubError("this needs huggingface_hub, which is not installed: pip install 'twisterl[hub]'") from None
    return huggingface_hub


def explain(exc: BaseException, what: str) -> Optional[HubError]:
    """The `HubError` for an error huggingface_hub raised while doing `what`; None for an
    error of another kind (a bug, which should surface as it is)."""
    from huggingface_hub import errors
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    login = "log in with `hf auth login` or set HF_TOKEN to a token that can"
    if isinstance(exc, errors.RevisionNotFoundError):
        return HubError(f"{what}: the repo has no such revision (branch, tag or commit)")
    if isinstance(exc, errors.GatedRepoError):
        return HubError(f"{what}: the repo is gated; ask for access on its page, then {login} read it")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return HubError(f"{what}: no such repo on the Hub, or it is private and no token with access was given "
                        f"({login} read it)")
    if isinstance(exc, errors.LocalTokenNotFoundError):
        return HubError(f"{what}: no Hugging Face token; {login} write to the repo")
    if isinstance(exc, errors.LocalEntryNotFoundError):
        from huggingface_hub import constants
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        return HubError(f"{what}: it is not (completely) in the local Hugging Face cache and {why}; download it "
                        f"once with network access ({first})")
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return HubError(f"{what}: the Hub refused (HTTP {status}); {login} write to it ({first})")
        return HubError(f"{what}: the Hub answered with an error{f' (HTTP {status})' if status else ''}: {first}")
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return HubError(f"{what}: HF_HUB_OFFLINE is set, and this needs the network")
    if isinstance(exc, errors.HFValidationError):
        return HubError(f"{what}: {first}")
    if isinstance(exc, (OSError, ConnectionError)) or type(exc).__module__.startswith(("httpx", "httpcore")):
        return HubError(f"{what}: the Hub cannot be reached ({type(exc).__name__}: {first})")
    return None


def call(what: str, fn: Callable, *args, **kwargs):
    """`fn(*args, **kwargs)`, huggingface_hub's errors turned into `HubError`s."""
    try:
        return fn(*args, **kwargs)
    except HubError:
        raise
    except Exception as exc:
        mapped = explain(exc, what)
        if mapped is None:
            raise
        raise mapped from None


def download(ref: HubRef, local_dir: Optional[Path] = None, token: Optional[str] = None,
             check_listing: Optional[Callable[[list], None]] = None) -> tuple[Path, Optional[Path]]:
    """The repo's files (`snapshot_download`): into huggingface_hub's cache, or into
    `local_dir`. With the network, `check_listing([(name, size), ...])` sees the repo's file
    list before anything is downloaded (a dry run); offline, the cache answers. Returns the
    folder and, for the cache, the blob folder its files link to."""
    hub = hf()
    from huggingface_hub import errors
    kwargs = dict(repo_id=ref.repo, revision=ref.revision, token=token, library_name="twisterl",
                  library_version=twisterl_version())
    if local_dir is not None:
        kwargs["local_dir"] = str(local_dir)
    if check_listing is not None:
        try:
            listing = hub.snapshot_download(**kwargs, dry_run=True)
        except errors.DryRunError:
            listing = None  # offline or unreachable: the cache (or local_dir) answers below
        except Exception as exc:
            mapped = explain(exc, str(ref))
            if mapped is None:
                raise
            raise mapped from None
        if listing is not None:
            check_listing([(f.filename, f.file_size) for f in listing])
    folder = Path(call(str(ref), hub.snapshot_download, **kwargs))
    blobs = None if local_dir is not None else folder.parent.parent / "blobs"
    return folder, blobs


def upload(folder: Path, repo_id: str, *, repo_type: str = "model", private: bool = False,
           revision: Optional[str] = None, token: Optional[str] = None, message: str,
           space_sdk: Optional[str] = None, api: Any = None) -> str:
    """Create the repo if needed (and the branch `revision`), then upload `folder` as one
    commit that also deletes the repo's files the folder no longer has. Returns the
    commit's URL. `api` stands in for `huggingface_hub.HfApi(token=token)`."""
    hub = hf()
    api = api if api is not None else hub.HfApi(token=token)
    where = f"{'spaces/' if repo_type == 'space' else ''}{repo_id}"
    extra = {"space_sdk": space_sdk} if space_sdk else {}
    call(where, api.create_repo, repo_id, repo_type=repo_type, private=private, exist_ok=True, **extra)
    if revision:
        call(where, api.create_branch, repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
    info = call(where, api.upload_folder, repo_id=repo_id, folder_path=str(folder), repo_type=repo_type,
                revision=revision, commit_message=message, delete_patterns=["*"])
    return str(getattr(info, "commit_url", info))
