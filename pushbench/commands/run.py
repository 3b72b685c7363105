"""``pushbench run SCENARIO``: measure a scenario, then render its report and print the answer.

Composes the two sides, which never import each other: the runner
(:mod:`pushbench.runner`) measures every cell into a new run directory and
prints the summary table, then the report (:mod:`pushbench.report`) renders
``report.html`` and ``report.md`` from the stored files, as ``pushbench report
RUN_DIR`` does, and the decision guide's verdicts (:func:`pushbench.report.guide.text`)
are printed, then the report's path: a run ends with its answer, like k6's
end-of-test summary. ``--no-report`` stops after the summary table. An
interrupted run (Ctrl-C, SIGTERM) is not rendered: it exits at once with the
command it would take. Exit codes are the runner's
(:func:`pushbench.runner.command.exit_code`); a report that cannot be rendered
turns a 0 into 1.
"""

from __future__ import annotations

import argparse
import sys

from pushbench.exitcodes import ExitCode
from pushbench.runner import command

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The runner's options, and ``--no-report``."""
    command.add_arguments(parser)
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="do not render report.html/report.md at the end (`pushbench report RUN` does it "
        "later); the summary table is printed either way",
    )


def run(args: argparse.Namespace) -> int:
    """Run, then (unless ``--no-report`` or interrupted) render and print the verdicts."""
    code, result = command.execute(args)
    if result is None:
        return code
    if not result.rows:  # an [abuse]-only run: no cells, so no report; its table instead
        from pushbench.report import http2, robustness

        if (result.run_dir / "abuse.json").exists():
            print(robustness.text(result.run_dir))
        if (result.run_dir / "browser_streams.json").exists():  # h43
            print(http2.text(result.run_dir))
        return code
    if args.no_report:
        return code
    if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        print(
            f"pushbench run: report not rendered; `pushbench report {result.run_dir}` renders "
            "what was measured",
            file=sys.stderr,
        )
        return code
    from pushbench.report import guide, render
    from pushbench.report.load import load_run

    try:
        written = render.render(result.run_dir)
        verdicts = guide.text(load_run(result.run_dir))
    except Exception as exc:  # the measurement is stored: say why, keep going
        print(f"pushbench run: error: the report failed: {exc!r}", file=sys.stderr)
        return code or 1
    print()
    print(verdicts)
    print()
    html = next(p for p in written if p.name == "report.html")
    print(f"report: {html}  (report.md beside it)", flush=True)
    return code
