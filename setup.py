"""The one build step pyproject.toml cannot declare without experimental configuration.

Everything else (metadata, packages, package data, the `pushbench` script) is in
pyproject.toml. This adds the optional C helpers: the WebSocket codec's frame parser,
encoder and mask (`pushbench/wire/_speedups.c`), the clients' envelope scanner
(`clients/_scan.c`), their compiled receive loop (`clients/_rxloop.c`, Linux: epoll) and the
raw stack's compiled fan-out (`pushbench/_fanout.c`) and the receiving half of the loopback
floor probe (`pushbench/_netfloor.c`).
`optional=True` makes a failed compile a warning, not a failed
install: pushbench then runs its pure Python paths (pushbench.wire.speedups says which).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pushbench.wire._speedups",
            sources=["pushbench/wire/_speedups.c"],
            optional=True,
            extra_compile_args=["-O3"],
        ),
        Extension(
            "pushbench.clients._scan",
            sources=["pushbench/clients/_scan.c"],
            depends=["pushbench/clients/_envelope.h", "pushbench/clients/_receipts.h"],
            optional=True,
            extra_compile_args=["-O3"],
        ),
        Extension(
            "pushbench.clients._rxloop",
            sources=["pushbench/clients/_rxloop.c"],
            depends=["pushbench/clients/_envelope.h", "pushbench/clients/_receipts.h"],
            optional=True,
            extra_compile_args=["-O3"],
        ),
        Extension(
            "pushbench._fanout",
            sources=["pushbench/_fanout.c"],
            optional=True,
            extra_compile_args=["-O3"],
        ),
        Extension(
            "pushbench._netfloor",
            sources=["pushbench/_netfloor.c"],
            optional=True,
            extra_compile_args=["-O3"],
        ),
    ]
)
