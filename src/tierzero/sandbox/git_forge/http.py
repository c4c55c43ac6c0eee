"""Git's smart HTTP and the deploy-key API for the forge stand-in, on one HTTPS server.

Smart HTTP is the real `git http-backend`, run per request as a CGI program (RFC 3875) with
the body de-chunked and the headers it needs passed on (git-http-backend(1), git 2.39):
`GIT_PROJECT_ROOT` + `PATH_INFO` locate the repository, `GIT_HTTP_EXPORT_ALL` exports it,
`GIT_PROTOCOL` carries protocol v2, `HTTP_CONTENT_ENCODING` lets it inflate gzip bodies, and
`REMOTE_USER` (set only after the token checked out) is what enables receive-pack.
- reads are anonymous: the stand-in's repositories are public ones, which both forges serve
  without credentials, while a private one asks for them (GitHub docs, "About repositories":
  public repositories are accessible to everyone; go-gitea/gitea routers/web/repo/githttp.go
  httpBase: `isPublicPull := repoExist && !repo.IsPrivate && isPull`, auth asked otherwise). Flux
  reads over SSH with its deploy key, which works for either. A push without credentials gets 401
  with `WWW-Authenticate: Basic`, as both answer, so git asks for them; a wrong token is 401 again
  (git then says "Authentication failed")
- an unknown repository is 404

The deploy-key API, in GitHub's shape under /repos/{owner}/{repo}/keys (docs.github.com/en/rest/
deploy-keys) and Gitea's under /api/v1/repos/{owner}/{repo}/keys (go-gitea/gitea
routers/api/v1/repo/key.go): list, create (201), delete (204). Both need the token
(`Authorization: Bearer|token <t>`, else 401). `read_only` omitted means read-write on both.
A key already in use: GitHub 422 "key is already in use" (anywhere on GitHub; widely relied
on, not in its docs). Gitea (go-gitea/gitea main 2025: routers/api/v1/repo/key.go
HandleAddKeyError, models/asymkey/ssh_key_deploy.go AddDeployKey/checkDeployKey): a key that is
an account's own SSH key 422 "Key content has been used as non-deploy key"; the same key or the
same title on the same repository 422 "This key has already been added to this repository"
(one query, `repo_id=? AND (key_id=? OR name=?)`); a deploy key of another repository may be
added again (deploy keys share one public key). Gitea's error body is {"message", "url"}
(services/context/api.go APIError), the url its API docs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tierzero.sandbox.http_server import StandInHttpServer

GitHost = Any  # tierzero.sandbox.git_forge.GitHost (not imported: that package starts this module)

_KEYS = re.compile(r"^(?P<api>/api/v1)?/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)/keys(?:/(?P<id>\d+))?/?$")


class _Handler(BaseHTTPRequestHandler):
    server: ForgeHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _reply(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, doc: Any) -> None:
        self._reply(code, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # RFC 9112 §7.1
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("bearer", "token"):
            return value.strip()
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(value).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return None
        return None

    def _handle(self) -> None:
        url = urlsplit(self.path)
        body = self._body() if self.command in ("POST", "PUT") else b""
        keys = _KEYS.match(url.path)
        if keys:
            return self._keys(keys, body)
        return self._git(url.path, url.query, body)

    # -- deploy keys

    def _keys(self, match: re.Match[str], body: bytes) -> None:
        host = self.server.git_host
        gitea = bool(match["api"])
        if not host.forge.token_ok(self._token()):
            return self._json(401, {"message": "Requires authentication"} if not gitea else {"message": "token is required"})
        repo = host.repo(f"{match['owner']}/{match['name']}")
        if repo is None:
            return self._json(404, {"message": "Not Found"})
        if self.command == "GET" and match["id"] is None:
            return self._json(200, [host.forge.key_document(repo, k, gitea) for k in host.forge.deploy_keys(repo)])
        if self.command == "DELETE" and match["id"] is not None:
            return self._reply(204) if host.forge.remove_deploy_key(repo, int(match["id"])) else self._json(404, {"message": "Not Found"})
        if self.command == "POST" and match["id"] is None:
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                return self._json(400, {"message": "Problems parsing JSON"})
            created, error = host.forge.add_deploy_key(repo, str(doc.get("title") or ""), str(doc.get("key") or ""),
                                                       bool(doc.get("read_only", False)), gitea=gitea)
            if error:
                return self._json(422, {"message": error, "url": f"https://{self.headers.get('Host', '127.0.0.1')}/api/swagger"} if gitea
                                  else {"message": "Validation Failed", "errors": [{"message": error}]})
            return self._json(201, host.forge.key_document(repo, created, gitea))
        return self._json(405, {"message": "Method Not Allowed"})

    # -- smart HTTP

    def _git(self, path: str, query: str, body: bytes) -> None:
        host = self.server.git_host
        parts = path.strip("/").split("/")
        if len(parts) < 3:
            return self._reply(404, b"Not Found\n")
        repo = host.repo("/".join(parts[:2]))
        if repo is None:
            return self._reply(404, b"Repository not found\n")
        push = "git-receive-pack" in query or path.endswith("/git-receive-pack")
        user = None
        if push:
            token = self._token()
            if not host.forge.token_ok(token):
                return self._reply(401, b"Authentication required\n", {"WWW-Authenticate": 'Basic realm="GitHub"'})
            user = "sandbox-user"
        rest = "/" + "/".join(parts[2:])
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": self.command, "PATH_INFO": f"/{repo.path.name}{rest}", "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0], "GIT_PROJECT_ROOT": str(repo.path.parent), "GIT_HTTP_EXPORT_ALL": "1",
        }
        if user:
            env["REMOTE_USER"] = user
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=300)
        head, sep, payload = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        if push and status == 200 and path.endswith("/git-receive-pack"):
            host.forge.pushed(repo)
        self._reply(status, payload, headers)

    do_GET = do_POST = do_DELETE = do_PUT = _handle


class ForgeHttpServer(StandInHttpServer):
    def __init__(self, host: GitHost, tls_dir: Any) -> None:
        super().__init__(_Handler, name=f"git-forge-http-{host.name}")
        self.git_host = host
        import ssl
        from pathlib import Path

        from tierzero.sandbox.http_server import self_signed

        cert, key = self_signed("127.0.0.1", what=f"git host {host.name}")
        base = Path(tls_dir)
        base.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = base / f"git-{self.port}.crt", base / f"git-{self.port}.key"
        cert_file.write_bytes(cert)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.ca_file = str(cert_file)
