"""Option types the benchmark commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

__all__ = ["name_list"]


def name_list(kind: str, known: Callable[[], Iterable[str]]) -> Callable[[str], list[str]]:
    """An argparse ``type`` for ``NAME[,NAME]``: every name one of ``known()`` (read when
    the option is parsed), else an error naming the unknown ones and the choices."""

    def parse(text: str) -> list[str]:
        choices = list(known())
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(unknown) or '(none)'}; choose from {', '.join(choices)}"
            )
        return names

    return parse
