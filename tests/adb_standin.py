"""A stand-in for Android's `adb` client, for the tests of the adb transport.

It keeps each "phone" as a folder `$EDGETWIN_ADB_ROOT/SERIAL` on this host and runs
the commands edgetwin gives adb there: `push` and `pull` copy files, `shell` runs the
command with the phone's paths (under /data/local/tmp) mapped into the folder and
passes stdin and stdout through. A file `SERIAL/.disconnect` holding N makes the next
`shell` drop after N lines of output, as an unplugged cable does, once. Every call is
logged in `$EDGETWIN_ADB_ROOT/adb.log`. This is not a phone: the docs say so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

DEVICE_TMP = "/data/local/tmp"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root = Path(os.environ["EDGETWIN_ADB_ROOT"])
    with (root / "adb.log").open("a") as log:
        log.write(" ".join(args) + "\n")
    if args[:1] == ["devices"]:
        print("List of devices attached")
        for phone in sorted(p for p in root.iterdir() if p.is_dir()):
            print(f"{phone.name}\tdevice")
        return 0
    if len(args) < 3 or args[0] != "-s":
        print("adb: usage: adb -s SERIAL push|pull|shell ...", file=sys.stderr)
        return 1
    serial, command, rest = args[1], args[2], args[3:]
    phone = root / serial
    if not phone.is_dir():
        print(f"error: device '{serial}' not found", file=sys.stderr)
        return 1
    if command == "push":
        target = _on_phone(phone, rest[1])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(rest[0], target)
        print(f"{rest[0]}: 1 file pushed.")
        return 0
    if command == "pull":
        source = _on_phone(phone, rest[0])
        if not source.exists():
            print(f"adb: error: failed to stat remote object '{rest[0]}': No such file or "
                  "directory", file=sys.stderr)
            return 1
        shutil.copyfile(source, rest[1])
        return 0
    if command == "shell":
        if rest[:1] == ["-T"]:
            rest = rest[1:]
        return _shell(phone, " ".join(rest))
    print(f"adb: unknown command {command}", file=sys.stderr)
    return 1


def _on_phone(phone: Path, path: str) -> Path:
    return phone / path.lstrip("/")


def _shell(phone: Path, command: str) -> int:
    command = command.replace(DEVICE_TMP, str(phone / DEVICE_TMP.lstrip("/")))
    marker = phone / ".disconnect"
    drop_after = int(marker.read_text()) if marker.exists() else None
    if drop_after is not None:
        marker.unlink()
    child = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None

    def feed() -> None:  # the host's stdin to the phone's command
        # read from the descriptor, not sys.stdin: a daemon thread blocked inside
        # sys.stdin's buffer holds its lock, and the interpreter's shutdown then aborts
        # ("could not acquire lock ... at interpreter shutdown"), failing the command
        assert child.stdin is not None
        with contextlib.suppress(ValueError, OSError):
            while chunk := os.read(0, 1 << 16):
                child.stdin.write(chunk)
                child.stdin.flush()
        with contextlib.suppress(OSError):
            child.stdin.close()

    threading.Thread(target=feed, daemon=True).start()
    for lines, line in enumerate(child.stdout, start=1):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
        if drop_after is not None and lines >= drop_after:
            child.kill()
            print("error: device offline", file=sys.stderr)
            return 1
    return child.wait()


if __name__ == "__main__":
    sys.exit(main())
