"""Run the codec tests over both paths: the compiled helpers (``_speedups.c``) and pure Python."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pushbench.wire import speedups

IMPLEMENTATIONS = ["c", "pure"]


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def mask_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Switch the codec's C helpers on or off for a module's tests (module scope:
    hypothesis-friendly).

    The frame parser, the encoder and ``apply_mask`` read
    :mod:`pushbench.wire.speedups` on every call, so this switches the whole
    codec, as ``speedups.use_speedups(False)`` (``PUSHBENCH_NO_SPEEDUPS=1``) does.
    """
    saved = speedups.state()
    if request.param == "c" and not all(speedups.built().values()):
        pytest.skip("the C helpers are not built (setup.py build_ext --inplace)")
    speedups.use_speedups(request.param == "c")
    try:
        yield request.param
    finally:
        speedups.restore(saved)
