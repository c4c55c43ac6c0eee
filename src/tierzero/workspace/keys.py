"""Key material created once per workspace: an age identity (X25519) and an ed25519 SSH key pair."""

from __future__ import annotations

from tierzero.workspace.layout import GITIGNORE, Workspace, write_private, write_public


def create_age_identity(ws: Workspace) -> str:
    """Create the workspace age key unless it exists; return the recipient (public key)."""
    if ws.age_key.exists():
        return ensure_age_recipient(ws)
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


def create_ssh_keypair(ws: Workspace, comment: str = "tierzero") -> str:
    """Create the workspace SSH key pair unless it exists; return the public key line."""
    if ws.ssh_key.exists() and ws.ssh_public_key.exists():
        return ws.ssh_public_key.read_text().strip()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    line = f"{public} {comment}"
    write_private(ws.ssh_key, private)
    write_public(ws.ssh_public_key, line + "\n")
    return line


def init_workspace(ws: Workspace) -> dict[str, str]:
    ws.root.mkdir(parents=True, exist_ok=True)
    ws.root.chmod(0o700)
    write_public(ws.root / ".gitignore", GITIGNORE)
    return {"age_recipient": create_age_identity(ws), "ssh_public_key": create_ssh_keypair(ws)}
