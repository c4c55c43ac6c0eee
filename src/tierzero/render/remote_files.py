"""Shell that writes a file on a remote host (over SSH, or `pct exec` into a container) atomically.

The script reads the file's bytes on stdin. Under `umask 077` the temporary file is created
owner-only, gets its final mode, and is renamed over the target in the same directory: rename(2)
replaces the name atomically within one filesystem (POSIX rename; mv(1) uses it), so readers see
the old file or the whole new one — never a half-written file after a dropped connection, and never
a secret readable by others between create and chmod. The temporary name starts with a dot:
ifupdown2's `source /etc/network/interfaces.d/*` and apt's sources.list.d skip such names, so a
leftover from a drop is never read as configuration.
"""

from __future__ import annotations

import shlex

TMP_SUFFIX = ".tierzero-tmp"


def temporary_path(path: str) -> str:
    """The hidden name `write_file_script` stages `path` under: `<dir>/.<name>.tierzero-tmp`."""
    directory, _, name = path.rpartition("/")
    return f"{directory}/.{name}{TMP_SUFFIX}"


def write_file_script(path: str, mode: str, *, sudo: bool = False) -> str:
    """POSIX sh that writes stdin to absolute `path` with octal `mode` (e.g. "0600") atomically.

    The parent directory is created (mode from the host's umask, before the private umask applies).
    `sudo`: the whole script runs as root (`sudo sh -c '...'`), for a login that is not root.
    Raises ValueError for a relative path or a mode that is not octal digits.
    """
    if not path.startswith("/") or path.endswith("/"):
        raise ValueError(f"write_file_script needs an absolute file path, not {path!r}")
    if not mode.isdigit() or set(mode) - set("01234567"):
        raise ValueError(f"write_file_script needs an octal mode like 0600, not {mode!r}")
    directory = path.rpartition("/")[0] or "/"
    tmp = shlex.quote(temporary_path(path))
    script = (f"mkdir -p {shlex.quote(directory)} && umask 077 && cat > {tmp} && chmod {mode} {tmp} "
              f"&& mv -f {tmp} {shlex.quote(path)}")
    return f"sudo sh -c {shlex.quote(script)}" if sudo else script
