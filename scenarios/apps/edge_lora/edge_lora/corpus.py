"""The text edge_lora trains on: the sources of the Python standard library's top-level
modules, as CPython 3.11.7 ships them (PSF License 2.0), one file per module cut at
64 KiB, in `corpus.tar.xz` beside this file. The same bytes on every machine, checked
at load by their hash: the interpreter's own library differs between Python builds, so
a run that read it would give other perplexities elsewhere.

`python -m edge_lora.corpus OUT` rebuilds the file from the running interpreter's
library (only a CPython 3.11.7 gives the same bytes)."""

from __future__ import annotations

import functools
import hashlib
import io
import sys
import sysconfig
import tarfile
from pathlib import Path

CORPUS = Path(__file__).with_name("corpus.tar.xz")
CORPUS_SHA256 = "9aa20786d753954ee48c52b24e38ba266fef1306017f9279bebe928310722df8"
MAX_MODULE_BYTES = 64 * 1024  # a module's text is cut here
SKIP = {"test", "tests", "idle_test", "site-packages", "__pycache__"}


@functools.lru_cache(maxsize=1)
def modules() -> dict[str, bytes]:
    """Module name -> its text, in name order; a damaged or other file is refused."""
    data = CORPUS.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != CORPUS_SHA256:
        raise ValueError(f"{CORPUS}: sha256 {digest[:16]}..., not the corpus this app "
                         f"ships ({CORPUS_SHA256[:16]}...): restore it from the repository")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:xz") as tar:
        out = {}
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            if handle is not None:
                out[member.name.removesuffix(".py")] = handle.read()
    return dict(sorted(out.items()))


def stdlib_sources() -> dict[str, bytes]:
    """The running interpreter's top-level stdlib modules and packages, tests left out,
    each package's files in order, cut at MAX_MODULE_BYTES."""
    root = Path(sysconfig.get_paths()["stdlib"])
    out: dict[str, bytes] = {}
    for entry in sorted(root.iterdir()):
        if entry.name in SKIP:
            continue
        if entry.is_dir() and (entry / "__init__.py").is_file():
            files = sorted(p for p in entry.rglob("*.py")
                           if not SKIP & set(p.relative_to(root).parts))
        elif entry.suffix == ".py":
            files = [entry]
        else:
            continue
        out[entry.stem if entry.is_file() else entry.name] = \
            b"\n".join(p.read_bytes() for p in files)[:MAX_MODULE_BYTES]
    return out


def build(out: Path) -> str:
    """Write the corpus of this interpreter's library to `out` (the same bytes for the
    same library: fixed order, times and owners); its sha256."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz", preset=9) as tar:
        for name, text in stdlib_sources().items():
            info = tarfile.TarInfo(f"{name}.py")
            info.size, info.mtime, info.mode = len(text), 0, 0o644
            tar.addfile(info, io.BytesIO(text))
    out.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS))
