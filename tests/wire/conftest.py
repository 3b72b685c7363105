"""Run the codec tests over both masking implementations: the C helper and pure Python."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pushbench.wire import mask

IMPLEMENTATIONS = ["c", "pure"]


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def mask_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Set ``mask.C_MASK`` for a module's tests (module scope: hypothesis-friendly).

    FrameReader and apply_mask read ``mask.C_MASK`` on every call, so flipping
    it switches the whole codec, as ``mask.use_speedups(False)`` does.
    """
    saved = mask.C_MASK
    if request.param == "c" and saved is None:
        pytest.skip("the C masking helper is not built")
    mask.C_MASK = saved if request.param == "c" else None
    try:
        yield request.param
    finally:
        mask.C_MASK = saved
