"""Payload bytes to the byte: the published figures and numpy's own writer."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgetwin.profiles.method import Method
from edgetwin.profiles.models import CATALOGUE
from edgetwin.profiles.payload import npy_header, serialized_size
from edgetwin.profiles.training_setup import TrainingSetup
from edgetwin.profiles.workload import build_workload

QKVO = Method("lora", 8, 32.0, ("q_proj", "k_proj", "v_proj", "o_proj"))


@pytest.mark.parametrize(("serialization", "expected"), [("raw", 2_949_120), ("npy", 2_960_640)])
def test_published_gemma_lora_upload(serialization: str, expected: int) -> None:
    w = build_workload(CATALOGUE["gemma-3-270m"], QKVO,
                       TrainingSetup(batch=8, seq=64, serialization=serialization))  # type: ignore[arg-type]
    assert w.payload.upload_bytes == w.payload.download_bytes == expected
    assert w.payload.tensors == 18 * 4 * 2


shapes = st.lists(st.integers(min_value=1, max_value=100_000), min_size=0, max_size=4).map(tuple)


@given(shapes)
def test_npy64_is_numpys_own_save(shape: tuple[int, ...]) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                               "shape": shape})
    assert npy_header(shape, "fp32", "npy64") == buf.getvalue()


@given(shapes)
def test_npy16_headers_parse_and_align(shape: tuple[int, ...]) -> None:
    header = npy_header(shape, "fp32", "npy")
    assert len(header) % 16 == 0
    buf = io.BytesIO(header)
    assert np.lib.format.read_magic(buf) == (1, 0)
    parsed_shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
    assert parsed_shape == shape and not fortran and dtype == np.float32


def test_saved_arrays_have_the_predicted_size() -> None:
    shapes_ = [(8, 640), (1024, 8), (3,), (2, 3, 4)]
    total = 0
    for s in shapes_:
        buf = io.BytesIO()
        np.save(buf, np.zeros(s, dtype=np.float32))
        total += len(buf.getvalue())
    assert serialized_size(shapes_, "fp32", "npy64") == total


def test_full_fine_tuning_sends_every_parameter() -> None:
    w = build_workload(CATALOGUE["gpt2"], Method("full"), TrainingSetup())
    assert w.payload.upload_bytes == 4 * 124_439_808
