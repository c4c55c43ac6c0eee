"""What `pct exec` does inside the sandbox's service containers (Docker, files, compose), for the
stand-in Proxmox hosts to delegate to. The Infisical stand-in's factory wires it in."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ContainerStandIn:
    """What `pct exec <vmid> -- sh -c <script>` does inside service containers, for a stand-in Proxmox
    host to delegate to (e.g. a `_cmd_pct` handler): Docker present or installed, files written
    from stdin with their mode, `docker compose up` refused until Docker and the .env are there."""

    docker_present: bool = False
    files: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)  # (vmid, path) -> (mode, content)
    scripts: list[tuple[int, str]] = field(default_factory=list)

    def pct(self, args: list[str], stdin: str = "") -> tuple[int, str, str]:
        """`args` after `pct`; returns (exit status, stdout, stderr)."""
        if len(args) != 6 or args[0] != "exec" or args[2:5] != ["--", "sh", "-c"]:
            return 2, "", f"pct: unsupported arguments {args[:3]}\n"
        vmid, script = int(args[1]), args[5]
        self.scripts.append((vmid, script))
        if script.startswith("docker version"):
            return (0, "", "") if self.docker_present else (127, "", "sh: docker: not found\n")
        if "apt-get install" in script and "docker-ce" in script:
            self.docker_present = True
            return 0, "", ""
        if "cat > " in script and "mv -f " in script:
            path = script.rsplit(" ", 1)[1].strip("'")
            mode = script.split("chmod ", 1)[1].split()[0]
            self.files[(vmid, path)] = (mode, stdin)
            return 0, "", ""
        if "docker compose up" in script:
            if not self.docker_present:
                return 127, "", "sh: docker: not found\n"
            if not any(v == vmid and p.endswith("/.env") for v, p in self.files):
                return 1, "", "env file .env not found\n"
            return 0, "", ""
        return 127, "", "sandbox container: unsupported script\n"
