"""What a Flower message asks of a node, and what that costs it.

A message is priced by what it carries, not by its type alone:
- `train`: a `train` message with arrays (a model to train on): the download, the local
  steps at the group's step cost, the upload of the reply;
- `evaluate`: an `evaluate` message: forward passes, `EVALUATE_STEP_SHARE` of a training
  step per local step;
- `control`: anything else (a `train` message with configuration only, such as
  SecAgg+'s key exchange; a `query`): its bytes both ways, the link's latency, and the
  node's work for it, with no model set-up and no steps.

The node's work beyond training is SecAgg+'s client side (`flwr`'s `secaggplus_mod`),
priced as elementwise ops on the node's profile: key pairs, key agreements, secret
shares, symmetric encryption and the pseudo-random masks over the model. Their sizes
are FLOP-equivalents measured once on a host (`benchmarks/secagg_work.py` prints them
anew): a primitive's time there times that host's elementwise FLOP rate. On a device
whose profile describes an accelerator (`launch: queued`, the Jetsons' GPUs) the work
runs on its CPU, which the profile does not describe: it takes the measuring host's
time (an assumption; an Orin's cores are somewhat slower, a Nano's a few times). A
message's bytes are those of its wire form (Flower's protobuf message).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flwr.app import Message

from edgetwin.profiles.device import DeviceProfile

TRAIN, EVALUATE, CONTROL = 0, 1, 2
KINDS = ("train", "evaluate", "control")
EVALUATE_STEP_SHARE = 1 / 3  # an evaluate message runs forward passes only

# SecAgg+'s client primitives in elementwise FLOP-equivalents: medians of
# `benchmarks/secagg_work.py` on a 2-core x86 host (AMD EPYC, 9.4 GFLOP/s elementwise;
# flwr 1.42), rounded: 214 us a key pair, 616 us a key agreement, 83 us a share, 9 us
# an encryption, 6-7 ns a mask element
KEY_PAIR_FLOPS = 2.0e6  # one elliptic-curve key pair, serialised
KEY_AGREEMENT_FLOPS = 5.8e6  # one ECDH shared key from serialised keys, with its derivation
SECRET_SHARE_FLOPS = 8.0e5  # one Shamir share of one secret
CIPHER_FLOPS = 8.5e4  # one Fernet encryption or decryption of a share pair
MASK_FLOPS_PER_ELEMENT = 60.0  # one pseudo-random mask element, drawn, added and reduced
MASK_BYTES_PER_ELEMENT = 24.0  # read two int64 arrays, write one

REFERENCE_FLOPS_PER_S = 9.4e9  # that host's elementwise rate: its CPU's time for the above

SECAGG_CONFIGS = "secaggplus_configs"  # flwr's RECORD_KEY_CONFIGS


def message_kind(msg: Message) -> int:
    """TRAIN, EVALUATE or CONTROL, by what the message carries."""
    category = msg.metadata.message_type.split(".")[0]
    if category == "evaluate":
        return EVALUATE
    if category == "train" and any(len(r) for r in msg.content.array_records.values()):
        return TRAIN
    return CONTROL


def over_the_wire(msg: Message) -> tuple[Message, float]:
    """The message as the receiving end gets it (decoded from its protobuf form, sharing
    nothing with the sender's) and its size on the wire, from one encoding."""
    from flwr.common.serde import message_from_proto, message_to_proto

    proto = message_to_proto(msg)
    return message_from_proto(proto), float(proto.ByteSize())


@dataclass(frozen=True)
class Work:
    """A node's work for a message beyond training, as elementwise ops."""

    flops: float = 0.0
    bytes: float = 0.0
    what: str = ""  # the SecAgg+ stage, or empty


def secagg_work(msg: Message) -> Work:
    """SecAgg+'s client work for this message (`secaggplus_mod`'s stages), from its
    configuration and the model it carries; nothing for other messages."""
    record = msg.content.config_records.get(SECAGG_CONFIGS)
    if record is None:
        return Work()
    stage = str(record.get("stage", ""))
    if stage == "setup":
        return Work(2 * KEY_PAIR_FLOPS, 0.0, stage)
    if stage == "share_keys":
        neighbours = max(len(record) - 1, 1)  # the stage key and one entry per neighbour
        flops = 2 * neighbours * SECRET_SHARE_FLOPS + \
            (neighbours - 1) * (KEY_AGREEMENT_FLOPS + CIPHER_FLOPS)
        return Work(flops, 0.0, stage)
    if stage == "collect_masked_vectors":
        others = len(_as_list(record.get("ctxts")))
        elements = sum(math.prod(a.shape) for r in msg.content.array_records.values()
                       for a in r.values())
        masks = others + 1  # one per neighbour and the node's own
        flops = others * (KEY_AGREEMENT_FLOPS + CIPHER_FLOPS) + \
            masks * elements * MASK_FLOPS_PER_ELEMENT
        return Work(flops, masks * elements * MASK_BYTES_PER_ELEMENT, stage)
    return Work(0.0, 0.0, stage)  # unmask: forwards the shares it holds


def work_s(profile: DeviceProfile, work: Work) -> float:
    """The device's time for `work`: its elementwise roofline, or the measuring host's
    time where its profile's ops are an accelerator's."""
    if not work.flops:
        return 0.0
    if profile.launch == "queued":
        return work.flops / REFERENCE_FLOPS_PER_S
    return profile.op_cost("elementwise").latency_s(work.flops, work.bytes)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []
