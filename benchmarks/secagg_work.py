"""SecAgg+'s client work on this host, in the units the emulator prices it in.

Times flwr's own client primitives (`secaggplus_mod`'s: key pairs, ECDH key agreement,
Shamir shares, Fernet encryption, the pseudo-random masks over the model) and this
host's elementwise FLOP rate (a fused multiply-add over float32 vectors that fit in
cache), and prints each primitive as FLOP-equivalents: its time times that rate. These
are the constants of `edgetwin.emulator.flower.pricing`; a device's profile then prices
them by its own elementwise rate. Medians of `--repeat` timings.

Usage: python benchmarks/secagg_work.py [--repeat 7] [--elements 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from flwr.common.secure_aggregation.crypto.shamir import create_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import (
    encrypt,
    generate_shared_key,
)
from flwr.common.secure_aggregation.ndarrays_arithmetic import parameters_addition
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
from flwr.supercore.primitives.asymmetric import (
    bytes_to_private_key,
    bytes_to_public_key,
    generate_key_pairs,
    private_key_to_bytes,
    public_key_to_bytes,
)

from edgetwin.emulator.flower import pricing


def median_s(fn: Callable[[], object], repeat: int, inner: int = 1) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def elementwise_flops_per_s(repeat: int) -> float:
    """One multiply and one add per element, over 64 Ki float32 (in cache)."""
    a, b = np.ones(65_536, np.float32), np.full(65_536, 1.0001, np.float32)
    out = np.empty_like(a)

    def fma() -> None:
        np.multiply(a, b, out=out)
        np.add(out, b, out=out)

    return 2 * a.size / median_s(fma, repeat, inner=200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--elements", type=int, default=1_000_000)
    args = parser.parse_args()
    rate = elementwise_flops_per_s(args.repeat)
    sk, _ = generate_key_pairs()
    _, pk2 = generate_key_pairs()
    sk_bytes, pk2_bytes = private_key_to_bytes(sk), public_key_to_bytes(pk2)
    shared = generate_shared_key(sk, pk2)

    def key_pair() -> None:  # as secaggplus_mod keeps them: serialised
        private, public = generate_key_pairs()
        private_key_to_bytes(private), public_key_to_bytes(public)

    def agree() -> None:
        generate_shared_key(bytes_to_private_key(sk_bytes), bytes_to_public_key(pk2_bytes))
    secret = b"\x01" * 32
    model = [np.zeros(args.elements, dtype=np.int64)]
    dims = [a.shape for a in model]

    def mask() -> None:
        parameters_addition(model, pseudo_rand_gen(shared, 1 << 30, dims))

    measured = {
        "KEY_PAIR_FLOPS": median_s(key_pair, args.repeat, 20),
        "KEY_AGREEMENT_FLOPS": median_s(agree, args.repeat, 20),
        "SECRET_SHARE_FLOPS": median_s(lambda: create_shares(secret, 3, 10), args.repeat,
                                       20) / 10,
        "CIPHER_FLOPS": median_s(lambda: encrypt(shared, secret * 4), args.repeat, 50),
        "MASK_FLOPS_PER_ELEMENT": median_s(mask, args.repeat) / args.elements,
    }
    print(f"elementwise rate on this host: {rate / 1e9:.2f} GFLOP/s "
          f"(float32 multiply-add over 64 Ki elements, median of {args.repeat})")
    print(f"{'constant':<24}{'time':>12}{'FLOP-equiv.':>14}{'in pricing.py':>15}")
    for name, seconds in measured.items():
        print(f"{name:<24}{seconds * 1e6:>10.3g}us{seconds * rate:>14.3g}"
              f"{getattr(pricing, name):>15.3g}")


if __name__ == "__main__":
    main()
