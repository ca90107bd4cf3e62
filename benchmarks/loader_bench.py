"""Figures for the model loader: how long "is it here" takes, and how fast an unusable hub fails.

    python benchmarks/loader_bench.py [--direct]

Prints, under the hub profile with HF_HUB_OFFLINE unset (as a user on a machine that cannot reach
the hub would run it):
- ``statuses()`` for every role: first call (imports included) and warm calls (no network);
- ``load("caption")`` of an uncached hub id: the loader's one HEAD request, then the remembered
  failure;
- with ``--direct``: the same model through ``transformers.AutoConfig.from_pretrained`` alone,
  i.e. what a load cost before the loader checked the hub (its retries, ~28 s here).
"""

from __future__ import annotations

import argparse
import os
import time

for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.pop(name, None)

from vlagent.errors import VlagentError  # noqa: E402
from vlagent.models import loader  # noqa: E402
from vlagent.settings import Settings  # noqa: E402

MODEL = "Salesforce/blip-image-captioning-base"


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    try:
        out = fn()
    except VlagentError as exc:
        out = exc
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--direct", action="store_true", help="also time transformers' own failure")
    args = parser.parse_args()
    settings = Settings(profile="hub", caption_model=MODEL)
    first, rows = timed(lambda: loader.statuses(settings))
    warm = min(timed(lambda: loader.statuses(settings))[0] for _ in range(5))
    print(f"statuses() of {len(rows)} roles: first {first * 1000:.0f} ms (imports), warm {warm * 1000:.1f} ms")
    cold, err = timed(lambda: loader.load("caption", settings))
    again, _ = timed(lambda: loader.load("caption", settings))
    print(f"load(caption) of an uncached hub id: {cold:.2f} s, remembered: {again * 1000:.2f} ms")
    print(f"  {err}")
    if args.direct:
        from transformers import AutoConfig

        def direct() -> None:
            try:
                AutoConfig.from_pretrained(MODEL)
            except OSError:
                pass

        seconds, _ = timed(direct)
        print(f"transformers.AutoConfig.from_pretrained alone: {seconds:.1f} s")


if __name__ == "__main__":
    main()
