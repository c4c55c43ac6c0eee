"""Key material created once per workspace: an age identity (X25519) and an ed25519 SSH key pair."""

from __future__ import annotations

from pathlib import Path

from tierzero.workspace.layout import GITIGNORE, Workspace, write_private, write_public


def create_age_identity(ws: Workspace) -> str:
    """Create the workspace age key unless it exists; return the recipient (public key).

    A public key without its private key is refused: a new identity would silently orphan every secret
    already encrypted to the old recipient."""
    if ws.age_key.exists():
        return ensure_age_recipient(ws)
    _refuse_orphan(ws.age_recipient_file, ws.age_key, "secrets encrypted to it could no longer be read")
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    recipient = str(identity.to_public())
    write_private(ws.age_key, f"# public key: {recipient}\n{identity}\n")
    write_public(ws.age_recipient_file, recipient + "\n")
    return recipient


def ensure_age_recipient(ws: Workspace) -> str:
    import pyrage

    identity = load_age_identity(ws)
    recipient = str(pyrage.x25519.Identity.from_str(identity).to_public())
    if not ws.age_recipient_file.exists() or ws.age_recipient_file.read_text().strip() != recipient:
        write_public(ws.age_recipient_file, recipient + "\n")
    return recipient


def load_age_identity(ws: Workspace) -> str:
    for line in ws.age_key.read_text().splitlines():
        if line.startswith("AGE-SECRET-KEY-"):
            return line.strip()
    from tierzero.errors import InputError

    raise InputError(f"{ws.age_key} holds no AGE-SECRET-KEY line", hint="restore the key from your backup; without it encrypted secrets cannot be read")


def _refuse_orphan(public: "Path", private: "Path", consequence: str) -> None:
    if public.exists():
        from tierzero.errors import InputError

        raise InputError(
            f"{private} is missing but {public} exists; a new key would replace it and {consequence}",
            hint=f"restore {private} from your backup, or delete {public} to start with a new key",
        )


def create_ssh_keypair(ws: Workspace, comment: str = "tierzero") -> str:
    """Create the workspace SSH key pair unless it exists; return the public key line.

    A private key whose .pub was lost gets its public half back; a .pub without its private key is refused."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if ws.ssh_key.exists():
        if ws.ssh_public_key.exists():
            return ws.ssh_public_key.read_text().strip()
        existing = serialization.load_ssh_private_key(ws.ssh_key.read_bytes(), password=None)
        public = existing.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
        write_public(ws.ssh_public_key, f"{public} {comment}\n")
        return f"{public} {comment}"
    _refuse_orphan(ws.ssh_public_key, ws.ssh_key, "hosts that trust it would refuse the new one")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    line = f"{public} {comment}"
    write_private(ws.ssh_key, private)
    write_public(ws.ssh_public_key, line + "\n")
    return line


def init_workspace(ws: Workspace, created: list[str] | None = None, kept: list[str] | None = None) -> dict[str, str]:
    """Create what the workspace lacks (age key, SSH key pair, .gitignore); never replace a key.

    `created` and `kept` collect the paths, for the caller to report."""
    created = [] if created is None else created
    kept = [] if kept is None else kept
    ws.root.mkdir(parents=True, exist_ok=True)
    ws.root.chmod(0o700)
    ignore = ws.root / ".gitignore"
    if ignore.exists():
        kept.append(str(ignore))
    else:
        write_public(ignore, GITIGNORE)
        created.append(str(ignore))
    had = {p: p.exists() for p in (ws.age_key, ws.age_recipient_file, ws.ssh_key, ws.ssh_public_key)}
    keys = {"age_recipient": create_age_identity(ws), "ssh_public_key": create_ssh_keypair(ws)}
    for path, existed in had.items():
        (kept if existed else created).append(str(path))
    return keys
