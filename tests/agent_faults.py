"""The agent protocol's faults as one table, run against both agents that speak it.

The Python agent (`python -m edgetwin.hil.agent`) and the native runner (`opbench --agent`)
answer the same requests, so each malformed message here must get the same error code, the
same request id (None where none could be read) and a message naming the same field from
both; and after each, the agent serves the next request."""

from __future__ import annotations

from typing import Any, NamedTuple

from edgetwin.hil.agent import protocol as proto
from edgetwin.hil.agent.requests import download_payload, native_ops, session_fields
from edgetwin.profiles.method import Method
from edgetwin.profiles.models import ModelArch
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import build_workload

# both agents are started with this bound on a request line, so `too_large` is cheap to reach
MAX_LINE_BYTES = 200_000
TINY = ModelArch("tiny", "llama", 64, 2, 4, 2, 16, 128, 512, False, "silu")


class Fault(NamedTuple):
    name: str
    line: bytes  # what is written to the agent's stdin, newline included
    code: str  # the error event's code
    request_id: str | None  # the id the error event carries
    says: str  # a piece of the error message: the field or the fault it names


def session_request(**over: Any) -> dict[str, Any]:
    """A well-formed `session` request for a tiny model, with `over` replacing fields."""
    w = build_workload(TINY, Method("lora", 4, 8.0, ("q_proj", "v_proj")),
                       TrainingSetup(batch=1, seq=16))
    fields = session_fields(w.model, w.method, w.setup, 2, download_payload(w, 0), 0, "cpu",
                            ops=native_ops(w))
    return {**fields, **over}


def _request(kind: str, rid: str, **fields: Any) -> bytes:
    return proto.encode(proto.request(kind, rid, **fields))


def _faults() -> list[Fault]:
    good = session_request()
    envelope = proto.request("facts", "e")
    return [
        Fault("not-json", b"this is not json\n", proto.BAD_JSON, None, ""),
        Fault("json-array", b"[1, 2]\n", proto.BAD_JSON, None, ""),
        Fault("cut-short", b'{"protocol": "edgetwin-agent", "version": 1,\n', proto.BAD_JSON,
              None, ""),
        Fault("version-2", proto.encode({**envelope, "version": 2}), proto.BAD_VERSION, "e",
              "version"),
        Fault("other-protocol", proto.encode({**envelope, "protocol": "other"}),
              proto.BAD_VERSION, "e", "protocol"),
        Fault("empty-id", proto.encode({**envelope, "id": ""}), proto.BAD_VALUE, None, "id"),
        Fault("long-id", proto.encode({**envelope, "id": "i" * 129}), proto.BAD_VALUE, None,
              "id"),
        Fault("unknown-kind", _request("shell", "k", command="rm -rf /"), proto.UNKNOWN_KIND,
              "k", "'shell'"),
        Fault("unknown-field", _request("facts", "u", extra=1), proto.BAD_VALUE, "u", "extra"),
        Fault("zero-steps", _request("session", "s", **{**good, "steps": 0}), proto.BAD_VALUE,
              "s", "steps"),
        Fault("negative-hidden", _request("session", "s", **{
            **good, "model": {**good["model"], "hidden": -1}}), proto.BAD_VALUE, "s",
              "model.hidden"),
        Fault("wrong-sha256", _request("session", "s", **{
            **good, "download": {**good["download"], "sha256": "0" * 64}}), proto.BAD_VALUE,
              "s", "download"),
        Fault("journal-up", _request("calibrate", "j", stage="ops",
                                     journal="../outside.jsonl"), proto.BAD_PATH, "j",
              "outside the work directory"),
        Fault("journal-absolute", _request("calibrate", "j", stage="ops",
                                           journal="/etc/passwd"), proto.BAD_PATH, "j",
              "outside the work directory"),
        Fault("too-large", b'{"protocol": "edgetwin-agent", "version": 1, "id": "big", '
              b'"kind": "facts", "pad": "' + b"x" * (MAX_LINE_BYTES + 1000) + b'"}\n',
              proto.TOO_LARGE, None, ""),
    ]


FAULTS = _faults()
