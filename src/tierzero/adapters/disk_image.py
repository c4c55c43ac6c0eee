"""Disk image files on this machine: decompress the Image Factory's `.xz` artifacts and convert between
formats with `qemu-img` (Debian package qemu-utils), as the Talos docs for Oracle do:
`qemu-img convert -f qcow2 -O vmdk -o subformat=streamOptimized` (Talos v1.14 docs, Oracle) and
`qemu-img convert -f raw -O qcow2` (Talos v1.11 docs, Oracle). Errors are tierzero errors naming the fix."""

from __future__ import annotations

import lzma
import shutil
import subprocess
from pathlib import Path

from tierzero.adapters.errors import from_subprocess
from tierzero.errors import OperationError

QCOW2_MAGIC = b"QFI\xfb"  # qemu docs/interop/qcow2.txt: the header's magic
VMDK_MAGIC = b"KDMV"  # VMware "Virtual Disk Format 1.1": a sparse extent header's magic (streamOptimized too)


def decompress_xz(src: Path, dst: Path) -> Path:
    """`src` (.xz) decompressed to `dst`, streamed (bounded memory)."""
    tmp = dst.with_suffix(dst.suffix + ".part")
    try:
        with lzma.open(src) as fin, tmp.open("wb") as fout:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
    except (lzma.LZMAError, EOFError) as exc:
        tmp.unlink(missing_ok=True)
        raise OperationError(f"{src.name} is not a complete .xz file: {exc}", hint="delete it and run again: it is downloaded anew") from exc
    tmp.replace(dst)
    return dst


def qemu_img() -> str:
    found = shutil.which("qemu-img")
    if found is None:
        raise OperationError("converting the Talos image needs `qemu-img`, which is not installed",
                             hint="install it (Debian/Ubuntu: apt-get install qemu-utils; macOS: brew install qemu), "
                                  "or give clusters[].image_ocid of an image you imported yourself")
    return found


def convert(src: Path, dst: Path, *, src_format: str, dst_format: str, options: str | None = None) -> Path:
    """`qemu-img convert -f SRC -O DST [-o OPTIONS] src dst`, written next to `dst` first then renamed,
    so an interrupted conversion never leaves a file that looks finished."""
    tmp = dst.with_suffix(dst.suffix + ".part")
    command = [qemu_img(), "convert", "-f", src_format, "-O", dst_format, *(["-o", options] if options else []), str(src), str(tmp)]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=1800)
    except (subprocess.SubprocessError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise from_subprocess(exc, "qemu-img", f"converting {src.name} to {dst_format}") from exc
    tmp.replace(dst)
    return dst


def to_vmdk_stream_optimized(src: Path, dst: Path, *, src_format: str = "qcow2") -> Path:
    return convert(src, dst, src_format=src_format, dst_format="vmdk", options="subformat=streamOptimized")


def to_qcow2(src: Path, dst: Path, *, src_format: str = "raw") -> Path:
    return convert(src, dst, src_format=src_format, dst_format="qcow2")
