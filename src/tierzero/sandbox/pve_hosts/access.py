"""`pveum` on the stand-in hosts: API tokens, roles and ACLs in the cluster's user.cfg, which the
linked fakepve enforces (`sync_access`). A fresh install has no token, no custom role and no ACL
entry. Source: proxmox/pve-installer 9.1.0 Proxmox/Install.pm line 1561.

- `pveum user token add` makes a privilege-separated token unless `--privsep 0`; a duplicate is
  `Token already exists.`; the secret is shown once. Source: proxmox/pve-access-control 9.0.4
  src/PVE/API2/User.pm generate_token 752-830 (privsep default 1 at line 813).
- every `pveum user token` command for a user user.cfg does not hold (a fresh install holds only
  root@pam) fails `no such user ('<user>')`. Source: pve-access-control 9.1.1 (5ccd07d)
  src/PVE/API2/User.pm 714, 800 (check_user_exist), src/PVE/AccessControl.pm 670-680.
- `pveum role add` refuses an existing role (`role '<r>' already exists`) and an unknown privilege
  (`invalid privilege '<p>'`); `role modify` replaces the privileges unless `--append`; a built-in
  role can be neither modified nor deleted (`auto-generated role '<r>' cannot be modified` /
  `deleted`). Source: pve-access-control 9.0.4 src/PVE/API2/Role.pm 97-160, 145, 222-223,
  src/PVE/AccessControl.pm 1222-1228.
- `pveum acl modify PATH --tokens T --roles R`: `--roles` is required (PUT /access/acl, `roles`
  not optional: shared/oracles/pve/apidata.json; ACL.pm 9.1.1 139-143), else the schema check
  fails `400 Parameter verification failed.` / `roles: property is missing and it is not
  optional` (pve-common src/PVE/JSONSchema.pm check_prop); it needs an existing role (`role '<r>' does not
  exist`) and token (`no such token '<t>' for user '<u>'`); ACL entries of a removed token are
  dropped. Source: pve-access-control 9.0.4 src/PVE/API2/ACL.pm 155-251,
  src/PVE/AccessControl.pm check_token_exist 698-709 and parse_user_config line 1540.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from fakepve.shapes import PRIVILEGES, ROLES

# Built-in roles with the privileges fakepve knows for them (more exist; none is used here).
BUILTIN_ROLES: dict[str, tuple[str, ...]] = {name: tuple(privs) for name, privs in ROLES.items()}


def _opt(args: list[str], name: str, default: str | None = None) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else default


def _privs(text: str | None) -> list[str]:
    return [p for p in re.split(r"[\s,;]+", text or "") if p]


class PveumCommands:
    """Mixin of `PveHosts`: `_cmd_pveum` and the sync into fakepve."""

    cluster: Any
    pve: Any

    def _cmd_pveum(self, host: Any, a: list[str], _: str) -> tuple[int, str, str]:
        if a[:2] == ["user", "token"] and len(a) >= 4:
            return self._pveum_token(a[2], a[3], a[4:])
        if a[:1] == ["role"] and len(a) >= 2:
            return self._pveum_role(a[1], a[2:])
        if a[:1] in (["acl"], ["aclmod"]):
            return self._pveum_acl(a[1:] if a[0] == "acl" else ["modify", *a[1:]])
        return 255, "", f"unknown command 'pveum {' '.join(a)}'\n"

    # ------------------------------------------------------------ tokens

    def _pveum_token(self, verb: str, user: str, rest: list[str]) -> tuple[int, str, str]:
        c = self.cluster
        if verb == "list" and user in c.users:
            rows = [{"tokenid": t.split("!", 1)[1], "privsep": c.token_privsep.get(t, 1), "expire": 0}
                    for t in sorted(c.tokens) if t.startswith(user + "!")]
            return 0, json.dumps(rows) + "\n", ""
        if user not in c.users:
            return 255, "", f"no such user ('{user}')\n"
        if not rest:
            return 255, "", "400 not enough arguments\n"
        tokenid = f"{user}!{rest[0]}"
        if verb == "add":
            if tokenid in c.tokens:
                return 255, "", "Token already exists.\n"
            privsep = int(_opt(rest, "--privsep", "1") or 1)
            secret = str(uuid.uuid4())
            c.tokens[tokenid] = secret
            c.token_privsep[tokenid] = privsep
            self.sync_access()
            return 0, json.dumps({"full-tokenid": tokenid, "info": {"privsep": privsep}, "value": secret}) + "\n", ""
        if verb == "modify":
            if tokenid not in c.tokens:
                return 255, "", f"no such token '{rest[0]}' for user '{user}'\n"
            if _opt(rest, "--privsep") is not None:
                c.token_privsep[tokenid] = int(_opt(rest, "--privsep") or 1)
            self.sync_access()
            return 0, "", ""
        if verb in ("remove", "delete"):
            if c.tokens.pop(tokenid, None) is None:
                return 255, "", f"no such token '{rest[0]}' for user '{user}'\n"
            c.token_privsep.pop(tokenid, None)
            c.acl = [e for e in c.acl if not (e["type"] == "token" and e["ugid"] == tokenid)]
            self.sync_access()
            return 0, "", ""
        return 255, "", "unknown pveum token command\n"

    # ------------------------------------------------------------ roles

    def roles(self) -> dict[str, tuple[str, ...]]:
        return {**BUILTIN_ROLES, **{name: tuple(privs) for name, privs in self.cluster.roles.items()}}

    def _pveum_role(self, verb: str, rest: list[str]) -> tuple[int, str, str]:
        c = self.cluster
        if verb == "list":
            rows = [{"roleid": name, "privs": ",".join(sorted(privs)), "special": 0 if name in c.roles else 1}
                    for name, privs in sorted(self.roles().items())]
            return 0, json.dumps(rows) + "\n", ""
        if not rest:
            return 255, "", "400 not enough arguments\n"
        role, privs = rest[0], _privs(_opt(rest, "--privs"))
        bad = next((p for p in privs if p not in PRIVILEGES), None)
        if verb == "add":
            if role in self.roles():
                return 255, "", f"role '{role}' already exists\n"
            if bad:
                return 255, "", f"invalid privilege '{bad}'\n"
            c.roles[role] = sorted(set(privs))
        elif verb == "modify":
            if role in BUILTIN_ROLES:
                return 255, "", f"auto-generated role '{role}' cannot be modified\n"
            if role not in c.roles:
                return 255, "", f"role '{role}' does not exist\n"
            if bad:
                return 255, "", f"invalid privilege '{bad}'\n"
            c.roles[role] = sorted(set(privs) | (set(c.roles[role]) if "--append" in rest else set()))
        elif verb == "delete":
            if role in BUILTIN_ROLES:  # Role.pm 222-223: role_is_special
                return 255, "", f"auto-generated role '{role}' cannot be deleted\n"
            if role not in c.roles:
                return 255, "", f"role '{role}' does not exist\n"
            del c.roles[role]
        else:
            return 255, "", f"unknown command 'pveum role {verb}'\n"
        self.sync_access()
        return 0, "", ""

    # ------------------------------------------------------------ ACLs

    def _pveum_acl(self, rest: list[str]) -> tuple[int, str, str]:
        c = self.cluster
        verb = rest[0] if rest else ""
        if verb == "list":
            return 0, json.dumps(c.acl) + "\n", ""
        if verb not in ("modify", "delete") or len(rest) < 2:
            return 255, "", f"unknown command 'pveum acl {' '.join(rest)}'\n"
        path = rest[1]
        roles, tokens = _privs(_opt(rest, "--roles")), _privs(_opt(rest, "--tokens"))
        propagate = int(_opt(rest, "--propagate", "1") or 1)
        if _opt(rest, "--roles") is None:
            return 255, "", "400 Parameter verification failed.\nroles: property is missing and it is not optional\n"
        if not tokens:
            return 255, "", "400 Parameter verification failed.\ntokens: either 'users', 'groups' or 'tokens' is required.\n"
        if not path.startswith("/"):
            return 255, "", f"400 Parameter verification failed.\npath: invalid ACL path '{path}'\n"
        for role in roles:
            if role not in self.roles():
                return 255, "", f"role '{role}' does not exist\n"
        for token in tokens:
            if token not in c.tokens:
                user, _, name = token.partition("!")
                return 255, "", f"no such token '{name}' for user '{user}'\n"
        keep = [e for e in c.acl if not (e["path"] == path and e["type"] == "token" and e["ugid"] in tokens and e["roleid"] in roles)]
        if verb == "modify":
            keep += [{"path": path, "type": "token", "ugid": t, "roleid": r, "propagate": propagate} for t in tokens for r in roles]
        c.acl = sorted(keep, key=lambda e: (e["path"], e["ugid"], e["roleid"]))
        self.sync_access()
        return 0, "", ""

    # ------------------------------------------------------------ fakepve

    def sync_access(self) -> None:
        """Put tokens, their privsep and the ACL (roles resolved to privileges) into fakepve."""
        pve = self.pve
        if pve is None:
            return
        c = self.cluster
        for tokenid in [t for t in pve.apitokens if t not in c.tokens]:
            pve.apitokens.pop(tokenid, None)
        pve.apitokens.update(c.tokens)
        pve.token_privsep = dict(c.token_privsep)
        roles = self.roles()
        acl: dict[str, list[tuple[str, set[str]]]] = {}
        for entry in c.acl:
            acl.setdefault(entry["ugid"], []).append((entry["path"].rstrip("/") or "/", set(roles.get(entry["roleid"], ()))))
        pve.acl = acl
        if hasattr(pve, "save_now"):
            pve.save_now()  # fakepve's world document holds the ACL too
