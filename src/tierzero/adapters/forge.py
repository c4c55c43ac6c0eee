"""A Git host's deploy-key API: GitHub (docs.github.com/en/rest/deploy-keys/deploy-keys) and
Gitea/Forgejo (go-gitea/gitea routers/api/v1/repo/key.go). Both: list `GET .../keys`, create
`POST .../keys` {title, key, read_only} -> 201, delete `DELETE .../keys/{id}` -> 204; neither
can change a key in place. `read_only` omitted means read-write on both, so it is always sent.

`ensure_deploy_key` reconciles like `flux bootstrap` (flux2 pkg/bootstrap/bootstrap_provider.go
@ v2.8.6): find the key by title; keep it when its key and read-only flag match, else delete
and create it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierzero.adapters import calls
from tierzero.adapters.errors import AuthenticationFailed, CallFailed, from_requests
from tierzero.errors import OperationError

GITHUB_API = "https://api.github.com"


@dataclass(frozen=True)
class ForgeApi:
    kind: str  # github | gitea
    api_url: str  # https://api.github.com, or https://<host>/api/v1
    token: str
    verify: bool | str = True

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One API request, reported as a call (via "http"); a refused token is an
        `AuthenticationFailed` (retrying cannot help), other failures `CallFailed`s naming the URL."""
        from urllib.parse import urlsplit

        import requests

        headers = {"Accept": "application/vnd.github+json" if self.kind == "github" else "application/json",
                   "Authorization": f"{'Bearer' if self.kind == 'github' else 'token'} {self.token}"}
        if self.kind == "github":
            headers["X-GitHub-Api-Version"] = "2022-11-28"
        url = self.api_url.rstrip("/") + path
        calls.sent("http", urlsplit(url).netloc, calls.http_request(method, url))
        try:
            resp = requests.request(method, url, json=body, headers=headers, timeout=30, verify=self.verify)
        except requests.RequestException as exc:
            raise from_requests(exc, f"{method} {url}") from None
        if resp.status_code in (401, 403):
            error = AuthenticationFailed if resp.status_code == 401 else CallFailed
            raise error(f"{method} {url}: {resp.status_code}: the token may not manage deploy keys of this repository",
                        hint="give gitops.forge.token repository administration (GitHub) or write (Gitea) access, or leave "
                             "gitops.forge out and add the printed deploy key by hand", status=resp.status_code)
        if resp.status_code == 404:
            raise CallFailed(f"{method} {url}: 404: no such repository, or the token cannot see it", hint="check gitops.repo_url and the token's scope",
                             status=404)
        if resp.status_code >= 400:
            raise CallFailed(f"{method} {url}: {resp.status_code}: {_message(resp)}", status=resp.status_code,
                             transient=resp.status_code in (408, 425, 429) or resp.status_code >= 500)
        return resp.json() if resp.content else None

    def keys(self, repo: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/repos/{repo}/keys") or [])

    def create(self, repo: str, title: str, key: str) -> dict[str, Any]:
        try:
            return dict(self._call("POST", f"/repos/{repo}/keys", {"title": title, "key": key, "read_only": True}))
        except OperationError as exc:
            if "used as non-deploy key" in exc.message:  # Gitea: an account's SSH key cannot be a deploy key
                raise OperationError(f"{exc.message}: the workspace's deploy key is also a user's SSH key on the Git host",
                                     hint="remove that key from the user's SSH keys, or delete the workspace's flux-deploy-key so a new one is made") from exc
            if "already in use" in exc.message or "already been added" in exc.message:
                raise OperationError(f"{exc.message}: the Git host already has this key (GitHub allows a deploy key on one repository only)",
                                     hint="remove that key where it is, or delete the workspace's flux-deploy-key so a new one is made") from exc
            raise

    def delete(self, repo: str, key_id: int) -> None:
        self._call("DELETE", f"/repos/{repo}/keys/{key_id}")


def _message(resp: Any) -> str:
    try:
        doc = resp.json()
    except ValueError:
        return str(resp.text[:200])
    errors = "; ".join(str(e.get("message", e)) for e in doc.get("errors", []) if isinstance(e, dict))
    return "; ".join(x for x in (str(doc.get("message", "")), errors) if x) or str(resp.text[:200])


def ensure_deploy_key(api: ForgeApi, repo: str, title: str, public_key: str) -> str:
    """Make `public_key` a read-only deploy key titled `title`: "exists", "replaced" or "created"."""
    wanted = " ".join(public_key.split()[:2])
    for key in api.keys(repo):
        if key.get("title") != title:
            continue
        if " ".join(str(key.get("key", "")).split()[:2]) == wanted and key.get("read_only") is True:
            return "exists"
        api.delete(repo, int(key["id"]))
        api.create(repo, title, public_key)
        return "replaced"
    api.create(repo, title, public_key)
    return "created"
