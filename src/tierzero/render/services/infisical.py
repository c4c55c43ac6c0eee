"""The Infisical stack inside its LXC: a docker compose file (no secrets) and its `.env` (all secrets).

The compose file may be kept in the workspace render dir; the `.env` text is only ever piped
into the container (mode 0600) and never written on the operator's machine.
"""

from __future__ import annotations

import base64
import secrets
import shlex
from dataclasses import dataclass

from tierzero.spec.services import Infisical

STACK_DIR = "/opt/tierzero/infisical"
API_PORT = 8080
POSTGRES_IMAGE = "postgres:16-alpine"
REDIS_IMAGE = "redis:7-alpine"
DB_USER = "infisical"
DB_NAME = "infisical"


def secret_name(service: str, item: str) -> str:
    """Where a generated secret of one Infisical service lives in the workspace secret store."""
    return f"infisical/{service}/{item}"


# Generators for the secrets the stack needs; each runs at most once per workspace.
def new_db_password() -> str:
    return secrets.token_hex(24)  # hex: safe inside a postgres:// URI without escaping


def new_encryption_key() -> str:
    return secrets.token_hex(16)  # Infisical expects 16 random bytes as 32 hex characters


def new_auth_secret() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def new_admin_password() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class StackSecrets:
    db_password: str
    encryption_key: str
    auth_secret: str

    def values(self) -> tuple[str, ...]:
        return (self.db_password, self.encryption_key, self.auth_secret)


def compose_file(svc: Infisical) -> str:
    """Three containers: PostgreSQL and Redis on an internal network only Infisical joins; Infisical
    also on an edge network so its API port can be published on the LXC's address."""
    return f"""\
# Rendered by tierzero for service {svc.name!r}; secrets come from .env beside this file.
name: infisical
services:
  db:
    image: {POSTGRES_IMAGE}
    restart: unless-stopped
    environment:  # only its own password; compose reads it from .env
      POSTGRES_USER: {DB_USER}
      POSTGRES_DB: {DB_NAME}
      POSTGRES_PASSWORD: ${{POSTGRES_PASSWORD:?}}
    volumes:
      - pg_data:/var/lib/postgresql/data
    networks: [internal]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U {DB_USER} -d {DB_NAME}"]
      interval: 5s
      timeout: 5s
      retries: 20
  redis:
    image: {REDIS_IMAGE}
    restart: unless-stopped
    command: ["redis-server", "--appendonly", "yes"]
    volumes:
      - redis_data:/data
    networks: [internal]
  backend:
    image: infisical/infisical:{svc.infisical_version}
    restart: unless-stopped
    depends_on:
      db:
        condition: service_healthy
      redis:
        condition: service_started
    env_file: .env
    ports:
      - "{API_PORT}:8080"
    networks: [internal, edge]
volumes:
  pg_data: {{}}
  redis_data: {{}}
networks:
  internal:
    internal: true
  edge: {{}}
"""


def env_file(svc: Infisical, stack: StackSecrets, site_url: str) -> str:
    """The `.env` the compose file reads. Holds every secret: never log, store or render it."""
    lines = {
        "ENCRYPTION_KEY": stack.encryption_key,
        "AUTH_SECRET": stack.auth_secret,
        "POSTGRES_PASSWORD": stack.db_password,
        "DB_CONNECTION_URI": f"postgres://{DB_USER}:{stack.db_password}@db:5432/{DB_NAME}",
        "REDIS_URL": "redis://redis:6379",
        "SITE_URL": site_url,
        "TELEMETRY_ENABLED": "false",
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())


DOCKER_PRESENT = "docker version >/dev/null 2>&1 && docker compose version >/dev/null 2>&1"

# Docker's own apt repository for Debian (the default LXC template); runs only when DOCKER_PRESENT fails.
DOCKER_INSTALL = """\
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q ca-certificates curl
install -m 0755 -d /etc/apt/keyrings
curl -fsSL https://download.docker.com/linux/debian/gpg -o /etc/apt/keyrings/docker.asc
chmod a+r /etc/apt/keyrings/docker.asc
. /etc/os-release
echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian $VERSION_CODENAME stable" > /etc/apt/sources.list.d/docker.list
apt-get update -q
apt-get install -y -q docker-ce docker-ce-cli containerd.io docker-compose-plugin
systemctl enable --now docker
"""


def compose_up_script() -> str:
    return f"set -eu; cd {shlex.quote(STACK_DIR)}; docker compose up -d --remove-orphans"
