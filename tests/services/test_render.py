from __future__ import annotations

import re
import shlex

import yaml

from tierzero.render.remote_files import write_file_script
from tierzero.render.services import infisical as render


def test_compose_file_shape(spec):
    svc = spec.infisical_services()[0]
    doc = yaml.safe_load(render.compose_file(svc))
    services = doc["services"]
    assert set(services) == {"db", "redis", "backend"}
    assert services["backend"]["image"] == f"infisical/infisical:{svc.infisical_version}"
    assert "env_file" not in services["db"] and "env_file" not in services["redis"]  # only Infisical reads every secret
    assert services["db"]["networks"] == ["internal"] and services["redis"]["networks"] == ["internal"]
    assert doc["networks"]["internal"]["internal"] is True
    assert services["backend"]["ports"] == ["8080:8080"]
    assert set(doc["volumes"]) == {"pg_data", "redis_data"}


def test_env_file_and_generators(spec):
    svc = spec.infisical_services()[0]
    stack = render.StackSecrets(render.new_db_password(), render.new_encryption_key(), render.new_auth_secret())
    env = dict(line.split("=", 1) for line in render.env_file(svc, stack, "http://192.168.10.30:8080").splitlines())
    assert re.fullmatch(r"[0-9a-f]{32}", env["ENCRYPTION_KEY"])
    assert len(__import__("base64").b64decode(env["AUTH_SECRET"])) == 32
    assert env["DB_CONNECTION_URI"] == f"postgres://infisical:{stack.db_password}@db:5432/infisical"
    assert env["REDIS_URL"] == "redis://redis:6379" and env["SITE_URL"] == "http://192.168.10.30:8080"
    assert render.new_admin_password() != render.new_admin_password()


def test_file_write_script_is_private_before_it_holds_data():
    script = write_file_script("/opt/tierzero/infisical/.env", "0600")
    parts = [p.strip() for p in script.split("&&")]
    tmp = "/opt/tierzero/infisical/..env.tierzero-tmp"
    assert parts.index("umask 077") < parts.index(f"cat > {tmp}") < parts.index(f"chmod 0600 {tmp}")
    assert shlex.split(parts[-1]) == ["mv", "-f", tmp, "/opt/tierzero/infisical/.env"]
