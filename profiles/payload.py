"""Bytes that travel each round, exactly as the wire formats frame them.

`raw` sends the tensors' bytes back to back; `npy` frames each tensor as a .npy
file with a version 1.0 header padded to 16 bytes, as the C++ trainer's writer
(cnpy style) does; `npy64` is numpy's own `np.save`, padded to 64 bytes with room
for the first axis to grow.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from edgetwin.profiles.training_setup import TrainingSetup

_MAGIC = b"\x93NUMPY\x01\x00"
_DESCR = {"fp32": "<f4", "fp16": "<f2", "bf16": "<V2"}
_GROWTH_AXIS_MAX_DIGITS = 21


@dataclass(frozen=True)
class Payload:
    upload_bytes: int
    download_bytes: int
    tensors: int
    header_bytes: int  # framing overhead included in each direction


def npy_header(shape: tuple[int, ...], dtype: str = "fp32", style: str = "npy") -> bytes:
    """The header `style` writes in front of a C-ordered array of `shape`."""
    shape_repr = repr(tuple(shape))
    text = f"{{'descr': '{_DESCR[dtype]}', 'fortran_order': False, 'shape': {shape_repr}, }}"
    if style == "npy":  # cnpy: pad so preamble + dict is a multiple of 16, newline last
        pad = 16 - (len(_MAGIC) + 2 + len(text)) % 16
        body = text + " " * (pad - 1) + "\n"
    elif style == "npy64":  # numpy.lib.format._wrap_header, version 1.0
        if shape:
            text += " " * (_GROWTH_AXIS_MAX_DIGITS - len(repr(shape[0])))
        hlen = len(text) + 1
        pad = 64 - (len(_MAGIC) + 2 + hlen) % 64
        body = text + " " * pad + "\n"
    else:
        raise ValueError(f"unknown npy style {style!r}")
    return _MAGIC + struct.pack("<H", len(body)) + body.encode("latin1")


def serialized_size(shapes: Sequence[tuple[int, ...]], dtype: str, serialization: str) -> int:
    """Bytes of `shapes` framed as `serialization` (raw, npy or npy64)."""
    item = 4 if dtype == "fp32" else 2
    data = sum(math.prod(s) for s in shapes) * item
    if serialization == "raw":
        return data
    return data + sum(len(npy_header(s, dtype, serialization)) for s in shapes)


def round_payload(trainable: Sequence[tuple[str, tuple[int, ...]]],
                  setup: TrainingSetup) -> Payload:
    """FedAvg-style exchange: the trainable tensors go down and come back up each round."""
    shapes = [shape for _, shape in trainable]
    total = serialized_size(shapes, setup.dtype, setup.serialization)
    raw = serialized_size(shapes, setup.dtype, "raw")
    return Payload(total, total, len(shapes), total - raw)


def frame(tensors: Sequence[tuple[tuple[int, ...], bytes]], dtype: str,
          serialization: str) -> bytes:
    """Tensors (shape, little-endian C-ordered bytes) as they travel: `raw` back to back,
    `npy`/`npy64` each behind its header. The size is `serialized_size` of the shapes."""
    parts: list[bytes] = []
    for shape, data in tensors:
        if serialization != "raw":
            parts.append(npy_header(shape, dtype, serialization))
        parts.append(data)
    return b"".join(parts)


def unframe(payload: bytes, shapes: Sequence[tuple[int, ...]], dtype: str,
            serialization: str) -> list[bytes]:
    """The tensors' bytes back out of a payload framed for `shapes`; a payload of another
    size or framing is a ValueError."""
    item = 4 if dtype == "fp32" else 2
    out: list[bytes] = []
    at = 0
    for shape in shapes:
        if serialization != "raw":
            header = npy_header(shape, dtype, serialization)
            if payload[at:at + len(header)] != header:
                raise ValueError(f"tensor {len(out)}: expected the header of shape {shape}")
            at += len(header)
        size = math.prod(shape) * item
        if at + size > len(payload):
            raise ValueError(f"tensor {len(out)}: payload ends early")
        out.append(payload[at:at + size])
        at += size
    if at != len(payload):
        raise ValueError(f"{len(payload) - at} bytes left after the last tensor")
    return out
