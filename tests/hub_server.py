"""A local stand-in for the Hugging Face Hub's HTTP API, for the tests (these machines cannot
reach the Hub). huggingface_hub talks to any endpoint it is given (`HF_ENDPOINT`, or
`HfApi(endpoint=...)`, documented for private Hubs and mirrors); this one answers the
requests that `create_repo`, `create_branch`, `upload_folder` (every file in "regular"
mode: base64 in the commit's NDJSON payload) and `snapshot_download` make, with git repos
kept in memory. It implements no auth: it records the Authorization headers it receives.

What it does not do, the real Hub does: LFS and Xet storage (files are never "lfs"
mode here), auth and permissions, metadata validation (`/api/validate-yaml` accepts
everything), rate limits, and Space builds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, unquote, urlparse


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    kind: str  # "model" or "space"
    repo_id: str
    private: bool = False
    sdk: Optional[str] = None
    commits: dict = field(default_factory=dict)  # sha -> {path: bytes}
    refs: dict = field(default_factory=dict)  # branch -> sha
    messages: list = field(default_factory=list)

    def commit(self, files: dict, message: str, branch: str = "main") -> str:
        sha = hashlib.sha1(json.dumps([self.repo_id, message, len(self.commits),
                                       sorted((p, git_blob_id(d)) for p, d in files.items())]).encode()).hexdigest()
        self.commits[sha] = dict(files)
        self.refs[branch] = sha
        self.messages.append(message)
        return sha

    def resolve(self, revision: str) -> Optional[str]:
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None


class FakeHub:
    """The server and its repos; `url` is the endpoint to give huggingface_hub."""

    def __init__(self):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.auth: list[Optional[str]] = []
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id: str, kind: str = "model", revision: str = "main") -> dict:
        repo = self.repos[(kind, repo_id)]
        return repo.commits[repo.resolve(revision)]

    def put(self, repo_id: str, files: dict, message: str = "by the test", kind: str = "model") -> str:
        """Commit `files` (path -> bytes) as the whole tree of a repo, as if pushed by anyone."""
        repo = self.repos.setdefault((kind, repo_id), Repo(kind, repo_id))
        return repo.commit({".gitattributes": b"*.safetensors filter=lfs\n", **files}, message)

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None,
                      content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _json(self, status: int, data, headers: Optional[dict] = None) -> None:
                self._send(status, json.dumps(data).encode(), headers)

            def _error(self, status: int, code: str, message: str) -> None:
                self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _repo(self, kind: str, repo_id: str) -> Optional[Repo]:
                repo = hub.repos.get((kind, repo_id))
                if repo is None:
                    self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
                return repo

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                hub.auth.append(self.headers.get("Authorization"))
                url = urlparse(self.path)
                path = unquote(url.path)
                with hub.lock:
                    m = re.match(r"^/api/(models|spaces)/([^/]+/[^/]+)/revision/(.+)$", path)
                    if m:
                        return self._info(m.group(1)[:-1], m.group(2), m.group(3))
                    m = re.match(r"^/api/(models|spaces)/([^/]+/[^/]+)/tree/([^/]+)(/.*)?$", path)
                    if m:
                        return self._tree(m.group(1)[:-1], m.group(2), m.group(3), (m.group(4) or "/")[1:])
                    m = re.match(r"^/(spaces/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
                    if m:
                        return self._resolve("space" if m.group(1) else "model", m.group(2), m.group(3), m.group(4))
                self._error(404, "NotFound", f"no route for {self.command} {path}")

            def _info(self, kind: str, repo_id: str, revision: str) -> None:
                repo = self._repo(kind, repo_id)
                if repo is None:
                    return
                sha = repo.resolve(revision)
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                self._json(200, {"id": repo_id, "_id": sha[:24], "sha": sha, "private": repo.private,
                                 "author": repo_id.split("/")[0], "siblings": [{"rfilename": p}
                                                                               for p in sorted(repo.commits[sha])],
                                 "tags": [], "downloads": 0, "likes": 0, "disabled": False, "gated": False,
                                 "lastModified": "2026-01-01T00:00:00.000Z", "sdk": repo.sdk})

            def _tree(self, kind: str, repo_id: str, revision: str, under: str) -> None:
                repo = self._repo(kind, repo_id)
                if repo is None:
                    return
                sha = repo.resolve(revision)
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                entries, dirs = [], set()
                for p, data in sorted(repo.commits[sha].items()):
                    if under and not p.startswith(under.rstrip("/") + "/"):
                        continue
                    parts = p.split("/")
                    for k in range(1, len(parts)):
                        dirs.add("/".join(parts[:k]))
                    entries.append({"type": "file", "oid": git_blob_id(data), "size": len(data), "path": p})
                entries += [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                            for d in sorted(dirs)]
                self._json(200, entries)

            def _resolve(self, kind: str, repo_id: str, revision: str, name: str) -> None:
                repo = self._repo(kind, repo_id)
                if repo is None:
                    return
                sha = repo.resolve(revision)
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                data = repo.commits[sha].get(name)
                if data is None:
                    return self._error(404, "EntryNotFound", f"{name} does not exist on {revision}")
                self._send(200, data, {"X-Repo-Commit": sha, "ETag": f'"{git_blob_id(data)}"'},
                           "application/octet-stream")

            def do_POST(self) -> None:
                hub.requests.append(f"POST {self.path}")
                hub.auth.append(self.headers.get("Authorization"))
                path = unquote(urlparse(self.path).path)
                body = self._body()
                with hub.lock:
                    if path == "/api/repos/create":
                        return self._create(json.loads(body))
                    if path == "/api/validate-yaml":
                        return self._json(200, {"errors": [], "warnings": []})
                    m = re.match(r"^/api/(models|spaces)/([^/]+/[^/]+)/branch/(.+)$", path)
                    if m:
                        return self._branch(m.group(1)[:-1], m.group(2), m.group(3))
                    m = re.match(r"^/api/(models|spaces)/([^/]+/[^/]+)/preupload/(.+)$", path)
                    if m:
                        files = json.loads(body)["files"]
                        return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                           "shouldIgnore": False, "oid": None} for f in files]})
                    m = re.match(r"^/api/(models|spaces)/([^/]+/[^/]+)/commit/(.+)$", path)
                    if m:
                        return self._commit(m.group(1)[:-1], m.group(2), m.group(3), body)
                self._error(404, "NotFound", f"no route for POST {path}")

            def _create(self, req: dict) -> None:
                kind = req.get("type") or "model"
                repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                if "/" not in repo_id:
                    repo_id = f"tester/{repo_id}"
                prefix = "spaces/" if kind == "space" else ""
                url = f"{hub.url}/{prefix}{repo_id}"
                if (kind, repo_id) in hub.repos:  # the Hub's answer names the repo that exists
                    return self._json(409, {"error": f"You already created this {kind} repo", "url": url},
                                      {"X-Error-Message": f"You already created this {kind} repo"})
                repo = Repo(kind, repo_id, bool(req.get("private")), req.get("sdk"))
                repo.commit({".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                            "initial commit")
                hub.repos[(kind, repo_id)] = repo
                self._json(200, {"url": url, "name": repo_id, "id": repo_id})

            def _branch(self, kind: str, repo_id: str, branch: str) -> None:
                repo = self._repo(kind, repo_id)
                if repo is None:
                    return
                if branch in repo.refs:
                    return self._error(409, "Conflict", f"Reference already exists: refs/heads/{branch}")
                repo.refs[branch] = repo.refs["main"]
                self._json(200, {})

            def _commit(self, kind: str, repo_id: str, revision: str, body: bytes) -> None:
                repo = self._repo(kind, repo_id)
                if repo is None:
                    return
                sha = repo.resolve(revision)
                if sha is None or revision not in repo.refs:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                files = dict(repo.commits[sha])
                summary = ""
                for line in body.splitlines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    value = item["value"]
                    if item["key"] == "header":
                        summary = value.get("summary", "")
                    elif item["key"] == "file":
                        if value.get("encoding") != "base64":
                            return self._error(400, "BadRequest", "files must be base64")
                        files[value["path"]] = base64.b64decode(value["content"])
                    elif item["key"] == "deletedFile":
                        files.pop(value["path"], None)
                    elif item["key"] == "deletedFolder":
                        files = {p: d for p, d in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
                    else:
                        return self._error(400, "BadRequest", f"this stand-in does not take {item['key']}")
                new = repo.commit(files, summary, revision)
                prefix = "spaces/" if kind == "space" else ""
                self._json(200, {"commitUrl": f"{hub.url}/{prefix}{repo_id}/commit/{new}", "commitOid": new,
                                 "pullRequestUrl": None})

        return Handler
