"""The one build step pyproject.toml cannot declare without experimental configuration.

Everything else (metadata, packages, package data, the `pushbench` script) is in
pyproject.toml. This adds the optional C helper for WebSocket masking: `optional=True`
makes a failed compile a warning, not a failed install, and pushbench then masks with
numpy (pushbench.wire picks whichever is importable).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pushbench.wire._speedups",
            sources=["pushbench/wire/_speedups.c"],
            optional=True,
            extra_compile_args=["-O3"],
        )
    ]
)
