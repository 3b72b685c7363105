"""The scenario report: rendered from the stored fixture run (a real short run), never re-run.

Checks every plot file is produced and non-empty, the HTML is self-contained
and opens in headless Chromium without console errors with every image
decoded, warnings are shown for incomplete and harness-bound runs, sections
without data say what is missing, the report opens with the answer table and
its rows are the decision guide's verdicts, the decision guide cites measured
cells, every figure writes its numbers one way with units on its axes, a
figure's ± never wraps, no absolute path of the machine shows, protocol floors
match real encoder bytes, and rendering is idempotent and leaves the run's data untouched.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import h11
import pytest

from pushbench import registry, sse
from pushbench.cli import main as cli_main
from pushbench.report import (
    answer,
    figure,
    floors,
    guide,
    guide_topology,
    paths,
    plots_cost,
    plots_latency,
    plots_rate,
    style,
)
from pushbench.report import codec as codec_report
from pushbench.report.build import NBSP, fmt_value
from pushbench.report.load import load_run
from pushbench.report.render import render
from pushbench.results import atomic_write_json, read_json
from pushbench.wire.frames import Opcode, encode_frame

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RUN = FIXTURES / "report-run"
CODEC = FIXTURES / "codec-run"
PLOT_KEYS = (
    "latency-pct-0.png",
    "latency-pct-1.png",
    "latency-vs-rate-0.png",
    "throughput.png",
    "bytes.png",
    "cpu-per-msg.png",
    "memory-per-conn.png",
    "latency-time.png",
)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _digest(run: Path) -> dict[str, str]:
    """Hashes of the run's data files (what a report must never change)."""
    files = [run / "cells.csv", run / "metadata.json", *sorted((run / "hist").iterdir())]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results base holding copies of the scenario and codec fixture runs."""
    base = tmp_path_factory.mktemp("results")
    _copy(RUN, base / "20260101T000000Z-aaaaaa")
    codec = _copy(CODEC, base / "20250101T000000Z-cccccc")
    codec_report.render(codec)  # its PNGs, from its codec.json
    return base


@pytest.fixture(scope="module")
def rendered(results: Path) -> tuple[Path, list[Path]]:
    run = results / "20260101T000000Z-aaaaaa"
    return run, render(run)


def test_every_plot_file_is_produced_and_non_empty(rendered: tuple[Path, list[Path]]) -> None:
    run, written = rendered
    names = {p.name for p in written}
    for key in PLOT_KEYS:
        assert key in names, f"{key} not drawn"
        data = (run / key).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000, key
    assert {"report.html", "report.md"} <= names


def test_html_is_self_contained(rendered: tuple[Path, list[Path]]) -> None:
    run, _ = rendered
    page = (run / "report.html").read_text()
    assert "<script" not in page
    # no external resource: every src is a data URI, no link to another file or host
    srcs = re.findall(r'src="([^"]+)"', page)
    assert len(srcs) >= len(PLOT_KEYS) + 4  # the run's plots and the codec run's four
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"(href|src)=\"(https?:)?//", page)
    assert "<link" not in page


def test_report_sections_from_the_data(rendered: tuple[Path, list[Path]]) -> None:
    run, _ = rendered
    md = (run / "report.md").read_text()
    for heading in (
        "## Summary",
        "## Saturation",
        "## Decision guide",
        "## Latency",
        "## Throughput and cost",
        "## Codec benchmark and hot-path profile",
        "## Failures and flags",
        "## Environment",
    ):
        assert heading in md, heading
    cells = list(csv.DictReader((run / "cells.csv").open()))
    # one summary row per transport × stack at each point: 5 transports × 2 rates
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0]
    for variant in ("ws · raw", "shortpoll · aiohttp"):  # ⚠: a flagged row
        assert len(re.findall(rf"^\| (⚠ )?{variant} \|", summary, re.M)) == 2, variant
    # the median p99 of a cell, as the table prints it
    p99 = sorted(int(r["lat_p99_us"]) for r in cells if r["cell_id"] == cells[0]["cell_id"])
    median = (p99[0] + p99[1]) / 2
    assert (f"{median:,.0f}" if median >= 1000 else f"{median:.3g}") in md
    meta = read_json(run / "metadata.json")
    assert meta["git"]["commit"] in md and meta["cpu"]["model"] in md
    assert "codec run `20250101T000000Z-cccccc` (the newest codec run" in md
    assert "Hot path" in md and "decode 125 B masked" in md
    # the harness's own figures: each cell's worst client loop stall, as stored
    harness = md.split("## The harness itself", 1)[1].split("\n## ", 1)[0]
    first = cells[0]["cell_id"]
    stall_ms = (
        max(float(r["client_max_loop_lag_us"]) for r in cells if r["cell_id"] == first) / 1000
    )
    line = next(line for line in harness.splitlines() if line.startswith(f"| {first} |"))
    assert f"{stall_ms:,.1f}" in line


def test_decision_guide_cites_measured_cells(rendered: tuple[Path, list[Path]]) -> None:
    run, _ = rendered
    md = (run / "report.md").read_text()
    guide = md.split("## Decision guide", 1)[1].split("\n## ", 1)[0]
    ids = {r["cell_id"] for r in csv.DictReader((run / "cells.csv").open())}
    low = guide.split("### Server-only push at a low rate", 1)[1].split("\n### ", 1)[0]
    cited = set(re.findall(r"cell `([^`]+)`", low))
    assert cited and cited <= ids
    assert "Latency (p99):" in low and "Cost (server CPU):" in low and "Simplicity:" in low
    # the fixture has no chat, idle or high-rate cells: the guide says which scenario to run
    assert "run `make bench SCENARIO=chat`" in guide
    assert "run `make bench SCENARIO=idle`" in guide
    assert "run `make bench SCENARIO=latency-vs-rate`" in guide
    proxies = guide.split("### Clients behind restrictive proxies", 1)[1]
    assert "not measured here: real proxies" in proxies
    assert not re.search(r"\*\*ws ·", proxies.split("Caveats", 1)[0])  # no WebSocket verdict


def test_series_match_the_measured_window() -> None:
    """The fixture's per-bucket series count exactly the latency samples of their row."""
    run = load_run(RUN)
    for rec in run.ok.to_dict("records"):
        series = run.series(rec["cell_id"], int(rec["repeat"]))
        assert series is not None
        assert int(series["count"].sum()) == int(rec["lat_count"]), rec["cell_id"]


def test_rendering_is_idempotent_and_leaves_data_alone(tmp_path: Path) -> None:
    run = _copy(RUN, tmp_path / "run")
    before = _digest(run)
    first = render(run)
    snapshot = {p.name: p.read_bytes() for p in first}
    second = render(run)
    assert [p.name for p in second] == [p.name for p in first]
    assert {p.name: p.read_bytes() for p in second} == snapshot
    assert _digest(run) == before
    assert not list(run.glob(".*.tmp"))  # atomic writes left no temporary file


def test_banner_for_incomplete_and_harness_bound_runs(tmp_path: Path) -> None:
    run = _copy(RUN, tmp_path / "run")
    meta = read_json(run / "metadata.json")
    meta.update(status="incomplete", reason="interrupted")
    atomic_write_json(run / "metadata.json", meta)
    rows = list(csv.DictReader((run / "cells.csv").open()))
    rows[0]["harness_bound"] = "True"
    rows[1].update(status="failed", reason="worker0 exited with 1")
    with (run / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    render(run, out=tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    banners = re.findall(r'<div class="banner" role="alert">(.*?)</div>', page)
    assert any("INCOMPLETE" in b and "interrupted" in b for b in banners)
    assert any("HARNESS-BOUND" in b and rows[0]["cell_id"] in b for b in banners)
    assert any("1 failed" in b for b in banners)
    assert 'class="failed"' in page and "worker0 exited with 1" in page
    assert 'class="flagged"' in page
    assert not (run / "report.html").exists()  # --out: the run directory is untouched


def test_banner_names_kept_repeats_the_hypervisor_slowed(tmp_path: Path) -> None:
    """A kept repeat with ≥ the run's steal_at of a core stolen (re-measures ran out, as
    in a `make bench` on 2026-12-07 when the hypervisor took up to 55 % of a core) is
    named in a banner with the worst share; one just under it is not; a run without the
    column (older schema) has no such banner."""
    run = _copy(RUN, tmp_path / "run")
    meta = read_json(run / "metadata.json")
    meta["speed"] = {**(meta.get("speed") or {}), "steal_at": 0.05}
    atomic_write_json(run / "metadata.json", meta)
    rows = list(csv.DictReader((run / "cells.csv").open()))
    fields = list(rows[0]) + ([] if "steal_fraction_max" in rows[0] else ["steal_fraction_max"])
    ok = [r for r in rows if r["status"] == "ok"]
    for r in rows:
        r["steal_fraction_max"] = "0.01"
    ok[0]["steal_fraction_max"] = "0.123"
    ok[1]["steal_fraction_max"] = "0.049"
    with (run / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    render(run)
    md = (run / "report.md").read_text()
    (banner,) = [
        line for line in md.splitlines() if line.startswith("> **⚠") and "hypervisor" in line
    ]
    assert f"1 of {len(ok)} kept repeat(s)" in banner and "up to 12%" in banner
    assert ok[0]["cell_id"] in banner and "rerun on a quieter machine" in banner
    if ok[1]["cell_id"] != ok[0]["cell_id"]:
        assert ok[1]["cell_id"] not in banner
    # pushbench run's terminal text says it too, before the verdicts
    text = " ".join(guide.text(load_run(run)).split())
    assert f"Warning: 1 of {len(ok)} kept repeat(s) ran while the hypervisor took" in text
    assert text.index("Warning:") < text.index(guide.SITUATIONS[0].title)
    plain = _copy(RUN, tmp_path / "plain")
    render(plain)
    lines = (plain / "report.md").read_text().splitlines()
    assert not [line for line in lines if line.startswith("> **⚠") and "hypervisor" in line]


def test_missing_data_is_named_not_hidden(tmp_path: Path) -> None:
    run = _copy(RUN, tmp_path / "run")
    shutil.rmtree(run / "series")
    (tmp_path / "lonely").mkdir()  # no codec run anywhere beside it
    target = _copy(run, tmp_path / "lonely" / "run")
    render(target)
    md = (target / "report.md").read_text()
    assert "this run has no series/" in md
    assert "No codec run found" in md and "make bench-codec" in md


def test_report_command(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = results / "20260101T000000Z-aaaaaa"
    codec = results / "20250101T000000Z-cccccc"
    out = run.parent / "cli-out"
    assert cli_main(["report", str(run), "--codec", str(codec), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "report.html"), str(out / "report.md")]
    assert "given with --codec" in (out / "report.md").read_text()
    assert cli_main(["report", str(results / "nothing-here")]) == 2  # bad input, as in compare
    assert "no run directory" in capsys.readouterr().err


def _in_chromium(page_path: Path, script: str, width: int = 1280) -> tuple[Any, list[str]]:
    """Open ``page_path`` in headless Chromium ``width`` px wide; (what ``script``, a JS
    function of no argument, returns; console errors). Skips without Chromium."""
    from pushbench.browser import CHROMIUM_ARGS, MISSING_HINT, chromium_path

    exe = chromium_path()
    if exe is None:
        pytest.skip(MISSING_HINT)
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(exe), args=list(CHROMIUM_ARGS[1:]), headless=True
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri(), wait_until="load")
            result = page.evaluate(script)
        finally:
            browser.close()
    return result, errors


def test_report_opens_in_chromium_without_errors(rendered: tuple[Path, list[Path]]) -> None:
    run, _ = rendered
    (widths, title), errors = _in_chromium(
        run / "report.html",
        "() => [Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0), "
        "document.title]",
    )
    assert errors == []
    assert len(widths) >= len(PLOT_KEYS) and all(w > 0 for w in widths)
    assert title.startswith("pushbench report")


#: Per table cell holding a ±: how many lines its text takes, and the cell's text.
_PM_LINES = """() => Array.from(document.querySelectorAll("td"))
  .filter(td => td.textContent.includes("±"))
  .map(td => {
    const range = document.createRange();
    range.selectNodeContents(td);
    const tops = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
    return [tops.size, td.textContent];
  })"""


def test_a_figure_and_its_spread_never_wrap(rendered: tuple[Path, list[Path]]) -> None:
    """On a phone-narrow page every summary cell ``1,234 ±5 %`` stays on one line: the
    HTML joins it with non-breaking spaces and never wraps figure cells."""
    run, _ = rendered
    page = (run / "report.html").read_text()
    assert "td.nw{white-space:nowrap}" in page
    assert f"{NBSP}±" in page and not re.search(r"<td[^>]*>[^<]* ±", page)
    assert fmt_value("lat_p99_us", 1234.0, 0.05) == f"1,234{NBSP}±5{NBSP}%"
    assert fmt_value("delivered_fraction", 0.5, 0.001) == f"50.00{NBSP}%{NBSP}±<1{NBSP}%"
    cells, errors = _in_chromium(run / "report.html", _PM_LINES, width=360)
    assert errors == [] and len(cells) > 20
    wrapped = [text for lines, text in cells if lines != 1]
    assert not wrapped, f"cells wrapped on a narrow page: {wrapped[:5]}"


# --- the answer first --------------------------------------------------------------


def _first_md_table(md: str) -> list[list[str]]:
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return [rows[0], *rows[2:]]  # the header, then the rows (not the alignment line)


def test_the_report_opens_with_the_answer(rendered: tuple[Path, list[Path]]) -> None:
    """The first table of the report (HTML and Markdown) is the answer: one row per
    situation, its recommended transport the guide's latency verdict, how sure as the
    guide judged its lead, and a link to the guide section that holds the evidence."""
    run, _ = rendered
    md = (run / "report.md").read_text()
    header, *rows = _first_md_table(md)
    assert header == [
        "situation",
        "recommended",
        "the figure that decided it",
        "how sure",
        "evidence",
    ]
    assert md.index("## The answer") < md.index("## Summary") < md.index("## Latency")
    guide_md = md.split("## Decision guide", 1)[1].split("\n## ", 1)[0]
    verdicts = answer.verdicts(load_run(run))
    assert [v.key for v in verdicts] == [s.key for s in guide.SITUATIONS] and len(rows) == 8
    measured = 0
    for row, sit in zip(rows, guide.SITUATIONS, strict=True):
        situation, recommended, figure_text, sure, evidence = row
        assert situation == f"[{sit.title}](#guide-{sit.key})"
        assert f"(#guide-{sit.key})" in evidence and f'<a id="guide-{sit.key}"></a>' in md
        text = guide_md.split(f"### {sit.title}", 1)[1].split("\n### ", 1)[0]
        if "Not measured in this run" in text:
            assert recommended == "—" and f"SCENARIO={sit.scenario}" in evidence
            continue
        measured += 1
        latency = re.search(
            r"Latency \(p99\): (.*?)\. Best cell: \*\*([^*]+)\*\* — p99 (\S+ µs) .*?cell `([^`]+)`",
            text,
        )
        assert latency is not None, text
        protocol = re.findall(r"\*\*([^*]+)\*\*", latency[1])[-1]
        assert recommended == f"**{protocol}** ({latency[2]})"
        assert latency[3] in figure_text and f"cell `{latency[4]}`" in figure_text
        # the guide's verdict → the answer table's how sure
        if "wins" in latency[1]:
            assert sure.startswith("beyond noise"), sure
        elif latency[1].startswith("tie between"):
            broken_by = re.findall(r"\*\* by ([^;]+)", latency[1])[-1]  # "**SSE** by …"
            assert sure.startswith("tie with") and f"by {broken_by})" in sure, sure
        else:
            assert "the only protocol" in latency[1] and sure == "only candidate"
    assert measured == 2  # low rate and proxies: the fixture has no chat, idle or high rate
    page = (run / "report.html").read_text()
    first = page[page.index("<table") :].split("</table>", 1)[0]
    assert first.startswith('<table class="text">') and "<th>how sure</th>" in first
    for sit in guide.SITUATIONS:
        assert f'<a href="#guide-{sit.key}">{sit.title}</a>' in first
        assert f'<section id="guide-{sit.key}">' in page
    # a measured situation names a protocol in bold (which one is the real run's)
    assert first.count("<strong>") >= measured


def test_an_idle_answer_is_the_guides_cost_verdict(tmp_path: Path) -> None:
    """With nothing pushed the answer is decided by memory per connection, and names the
    transport the guide's cost line names."""
    run = _copy(RUN, tmp_path / "run")
    rows = list(csv.DictReader((run / "cells.csv").open()))
    for r in rows:
        if float(r["rate_msgs_per_s"]) == 50:
            r["rate_msgs_per_s"] = "0"
    with (run / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    render(run)
    md = (run / "report.md").read_text()
    idle = md.split("### Many idle subscribers", 1)[1].split("\n### ", 1)[0]
    cost = re.search(r"Cost \(memory\): .*?Best cell: \*\*([^*]+)\*\* — ", idle)
    assert cost is not None, idle
    (row,) = [r for r in _first_md_table(md)[1:] if "(#guide-idle)" in r[0]]
    assert row[1].endswith(f"({cost[1]})") and row[2].startswith("memory ")
    assert row[3].startswith(("tie with", "beyond noise", "only candidate"))
    (verdict,) = [v for v in answer.verdicts(load_run(run)) if v.key == "idle"]
    assert verdict.column == "server_rss_growth_bytes_per_conn"


def test_memory_figures_are_marginal_when_the_run_has_them(tmp_path: Path) -> None:
    """A run with the slope's column: the idle verdict, the summary table and the memory
    figure use the marginal bytes per connection and say so."""
    run = _copy(RUN, tmp_path / "run")
    rows = list(csv.DictReader((run / "cells.csv").open()))
    for k, r in enumerate(rows):
        if float(r["rate_msgs_per_s"]) == 50:
            r["rate_msgs_per_s"] = "0"
        r["mem_marginal_bytes_per_conn"] = str(3000 + 1000 * k) if r["status"] == "ok" else ""
    with (run / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    render(run)
    md = (run / "report.md").read_text()
    idle = md.split("### Many idle subscribers", 1)[1].split("\n### ", 1)[0]
    assert re.search(r"Cost \(memory \(marginal\)\): .*?Best cell: \*\*[^*]+\*\* — ", idle), idle
    assert "memory here is marginal" in idle
    assert "memory (marginal) (B/conn)" in md  # the summary table's column
    assert "the marginal cost" in md  # the memory figure's caption
    (verdict,) = [v for v in answer.verdicts(load_run(run)) if v.key == "idle"]
    assert verdict.column == "mem_marginal_bytes_per_conn"


def test_poll_rows_carry_server_cpu_per_request_and_streams_do_not(tmp_path: Path) -> None:
    """Derived when a run is read (never stored): CPU per message ÷ requests per message,
    per repeat; the summary shows it, with its meaning in the caption, only where polls are."""
    cells = load_run(RUN).cells
    polls = cells[cells["requests_per_msg"] > 0]
    assert len(polls) == 12
    want = polls["server_cpu_us_per_msg"] / polls["requests_per_msg"]
    assert (polls["server_cpu_us_per_request"] - want).abs().max() < 1e-9
    streams = cells[cells["transport"].isin(["ws", "sse"])]
    assert streams["server_cpu_us_per_request"].isna().all()
    run = _copy(RUN, tmp_path / "run")
    render(run)
    md = (run / "report.md").read_text()
    assert "server CPU per request (µs/request)" in md
    assert "what one answer costs however many messages it carries" in md
    rows = [
        r for r in csv.DictReader((run / "cells.csv").open()) if r["transport"] in ("ws", "sse")
    ]
    streams_only = _copy(RUN, tmp_path / "streams")
    with (streams_only / "cells.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    render(streams_only)
    assert "per request" not in (streams_only / "report.md").read_text()


# --- numbers and units in figures ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (1, "1"),
        (12.5, "12.5"),
        (999, "999"),
        (999.6, "1k"),
        (1000, "1k"),
        (3280, "3.28k"),
        (18_200, "18.2k"),
        (250_000, "250k"),
        (999_600, "1M"),
        (2_500_000, "2.5M"),
        (1.5e9, "1.5G"),
        (0.5, "0.5"),
        (0.05, "0.05"),
        (0.000123, "0.000123"),
        (-3280, "-3.28k"),
        (float("nan"), ""),
    ],
)
def test_one_tick_format(value: float, text: str) -> None:
    assert figure.tick_label(value) == text


_UNIT = re.compile(r"\((µs|msgs/s|B|B/msg|B/conn|µs/msg|s|%)(, [^)]*)?\)$")


def test_every_figure_writes_numbers_one_way_with_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every numeric axis of every figure: tick labels by :func:`figure.tick_label` (no
    ``3.28e+03`` beside ``18.2k``, no ``10^3``), a title ending in its unit."""
    drawn: list[Any] = []

    def keep(fig: Any, path: Path) -> Path:
        drawn.append(fig)
        return path

    for module in (plots_latency, plots_rate, plots_cost):
        monkeypatch.setattr(module, "save", keep)
    run = load_run(RUN)
    from pushbench.report.plots import render_all

    render_all(run, tmp_path)
    assert len(drawn) >= 7
    labels: list[str] = []  # every number written on a numeric axis or a bar
    titles: list[str] = []
    for fig in drawn:
        fig.canvas.draw()
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            for ticks, title in (
                (ax.get_xticklabels(which="both"), ax.get_xlabel()),
                (ax.get_yticklabels(which="both"), ax.get_ylabel()),
            ):
                labels += [t.get_text() for t in ticks if t.get_text()]
                titles += [title] if title else []
            labels += [t.get_text() for t in ax.texts]
    assert len(titles) > 10
    # a number in any other format (3.28e+03, 10^3 in mathtext, 1,234) is refused;
    # categories (transport names, the named percentiles "99.9 %", notes) are not numbers
    other = re.compile(r"[-−]?[\d.,]+(e[+-]?\d+)?|.*\$.*")
    ours = re.compile(r"-?\d[\d.]*[kMG]?")
    numbers = [t for t in labels if other.fullmatch(t) or ours.fullmatch(t)]
    bad = [t for t in numbers if not ours.fullmatch(t) or figure.tick_label(_number(t)) != t]
    assert len(numbers) > 50 and not bad, sorted(set(bad))
    bad = [t for t in titles if not _UNIT.search(t)]
    assert not bad, bad


def _number(text: str) -> float:
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}
    if text and text[-1] in scale:
        return float(text[:-1]) * scale[text[-1]]
    return float(text)


# --- protocol floors against real bytes -------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 100_000])
def test_websocket_floor_matches_the_encoder(size: int) -> None:
    payload = b"x" * size
    frame = encode_frame(Opcode.TEXT, payload)
    assert floors.ws_header(size) == len(frame) - size
    masked = encode_frame(Opcode.TEXT, payload, mask=b"abcd")
    assert floors.ws_header(size, masked=True) == len(masked) - size
    assert floors.floor("ws", size) == floors.Floor(len(frame), 0.0)


@pytest.mark.parametrize(("size", "event_id"), [(1, 1), (64, 7), (100, 12345), (5000, 10**9)])
def test_sse_floor_matches_the_encoder_and_h11_chunking(size: int, event_id: int) -> None:
    data = b"y" * size
    event = sse.event(data, event_id)
    assert floors.sse_event_overhead(size, event_id) == len(event) - size
    # chunked framing as an independent HTTP/1.1 implementation writes it
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET /sse HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.next_event()
    conn.send(h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")]))
    chunk = conn.send(h11.Data(data=event))
    assert chunk is not None
    assert floors.chunk_overhead(len(event)) == len(chunk) - len(event)
    minimal = floors.floor("sse", size)
    assert minimal is not None
    assert minimal.bytes_in == len(sse.event(data, 1)) + floors.chunk_overhead(
        len(sse.event(data, 1))
    )


def test_polling_floor_matches_minimal_http_messages() -> None:
    client = h11.Connection(h11.CLIENT)
    request = client.send(h11.Request(method="GET", target="/p", headers=[("Host", "a")]))
    request = (request or b"") + (client.send(h11.EndOfMessage()) or b"")
    assert floors.MIN_HTTP_REQUEST == len(request) == 28
    body = b"z" * 100
    server = h11.Connection(h11.SERVER)
    server.receive_data(request)
    server.next_event()
    head = server.send(
        h11.Response(status_code=200, headers=[("Content-Length", str(len(body)))], reason="OK")
    )
    # h11 adds no header of its own to a response with Content-Length
    assert head is not None and floors.http_response_head(len(body)) == len(head)
    one = floors.floor("longpoll", 100, requests_per_msg=1.0)
    assert one == floors.Floor(100 + len(head), 28.0)
    assert floors.floor("shortpoll", 100) is None  # unknown without the measured poll count
    batched = floors.floor("shortpoll", 100, requests_per_msg=0.25)
    assert batched is not None and batched.bytes_out == 7.0
    assert floors.floor("carrier-pigeon", 100) is None


# --- the report reads the registry --------------------------------------------------

_PIGEON = registry.Transport(
    name="pigeon",
    protocol="pigeon",
    label="pigeon post",
    path="/pigeon",
    delivery="streaming",
    upgrade=False,
    floor="sse",
    color="#123456",
    marker="*",
    simplicity=0,
    simplicity_why="a bird needs no protocol",
    clients={},
)
_LOFT = registry.Stack(
    name="loft",
    label="a pigeon loft",
    serves=("pigeon",),
    argv=("true",),
    linestyle="--",
    marker="P",
)


def test_a_registry_row_is_drawn_ordered_floored_and_ranked_from_its_own_fields() -> None:
    """A transport and a stack added as registry rows reach the report with no report edit:
    colour, order, floor rule and simplicity come from the transport's row, line style,
    marker and hatch from the stack's; outside the ``with`` block they are unknown again."""
    before = style.order_key("shortpoll", "starlette")
    with registry.extended(transports=(_PIGEON,), stacks=(_LOFT,)):
        assert style.color("pigeon") == "#123456"
        assert style.transport_colors()["pigeon"] == "#123456"
        assert style.transports()[-1] == "pigeon" and style.stacks()[-1] == "loft"
        # after every known transport, before an unknown one
        assert before < style.order_key("pigeon", "raw") < style.order_key("nope", "raw")
        assert style.order_key("pigeon", "raw") < style.order_key("pigeon", "loft")
        assert (style.linestyle("loft"), style.marker("loft"), style.hatch("loft")) == (
            "--",
            "P",
            "//",
        )
        # its floor rule is SSE's: the same bytes as SSE for every payload
        for size in (0, 100, 70_000):
            assert floors.floor("pigeon", size) == floors.floor("sse", size) is not None
        assert guide.simplicity("pigeon") == (0, "a bird needs no protocol")
        # no protocol upgrade: one of the plain-HTTP transports behind proxies (what a run
        # without naive proxy cells judges there; h33: guide_topology reads the registry)
        assert guide_topology.plain_http() == (
            "sse",
            "sse-aiohttp",
            "longpoll",
            "longpoll-aiohttp",
            "shortpoll",
            "shortpoll-aiohttp",
            "sse-h2",  # h35: the HTTP/2 variants are plain HTTP too
            "longpoll-h2",
            "pigeon",
        )
    assert style.color("pigeon") == "#7f7f7f" and floors.floor("pigeon", 100) is None
    assert style.order_key("pigeon", "loft") == (len(style.transports()), len(style.stacks()), "")
    assert guide.simplicity("pigeon") == (9, "unranked")


def test_the_look_and_ranks_are_the_registrys_rows() -> None:
    """Every known transport and stack is styled, floored and ranked by its own row:
    transports that name the same floor rule get the same floor, different rules differ."""
    floors_by_rule: dict[str, set[floors.Floor | None]] = {}
    for t in registry.transports():
        assert style.color(t.name) == t.color
        assert guide.simplicity(t.name) == (t.simplicity, t.simplicity_why)
        got = floors.floor(t.name, 100, requests_per_msg=1.0)
        floors_by_rule.setdefault(t.floor, set()).add(got)
    assert {rule: len(got) for rule, got in floors_by_rule.items()} == {
        "ws": 1,
        "sse": 1,
        "poll": 1,
    }
    assert len({next(iter(got)) for got in floors_by_rule.values()}) == 3
    for s in registry.stacks():
        assert (style.linestyle(s.name), style.marker(s.name)) == (s.linestyle, s.marker)
    assert style.transports() == registry.transport_names()
    assert style.stacks() == registry.stack_names()


def test_saturation_from_the_runners_csv(tmp_path: Path) -> None:
    """A run with saturation.csv shows the runner's search, not the report's estimate."""
    run = _copy(RUN, tmp_path / "run")
    header = (
        "group_id,stack,transport,ws_client,subscribers,payload_bytes,hub,client,slo_p99_us,"
        "min_delivered_fraction,max_rate,highest_passing,lowest_failing,monotonic,"
        "saturated_side,rates_tried"
    )
    row = "g0,aiohttp,ws,light,4,64,memory,python,50000,0.99,137,137,160,True,server,50;137;160;200"
    (run / "saturation.csv").write_text(header + "\n" + row + "\n")
    render(run, out=tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    sat = md.split("## Saturation", 1)[1].split("\n## ", 1)[0]
    assert "the runner's search (saturation.csv)" in sat
    assert "| ws · aiohttp | 4 subscribers · 64 B | 137 | 160 | server |" in sat
    assert (tmp_path / "out" / "latency-vs-rate-0.png").stat().st_size > 5000


def test_a_run_that_measured_nothing_is_refused_clearly(tmp_path: Path) -> None:
    run = _copy(RUN, tmp_path / "run")
    header = (run / "cells.csv").read_text().splitlines()[0]
    (run / "cells.csv").write_text(header + "\n")
    with pytest.raises(FileNotFoundError, match="measured nothing"):
        render(run)


def test_a_report_carries_no_absolute_path_of_the_machine(tmp_path: Path) -> None:
    """Nothing in report.md or report.html says where the run was on the machine: the
    re-render line names the run by its results folder and id, the command line and the
    scenario file lose their absolute prefixes, the codec profile shows module paths from
    the package on (the metadata below holds every kind of path a real run records)."""
    run = _copy(RUN, tmp_path / "results" / "20260101T000000Z-aaaaaa")
    codec = _copy(CODEC, tmp_path / "results" / "20250101T000000Z-cccccc")
    meta = read_json(run / "metadata.json")
    meta["command"] = [
        "/home/ann/src/pushbench/.venv/bin/pushbench",
        "run",
        "/home/ann/src/pushbench/scenarios/quick.toml",
        "--out",
        "/root/results",
        f"--junit={tmp_path}/junit.xml",
    ]
    meta["scenario_file"] = "/work/main/scenarios/quick.toml"
    meta["python"]["executable"] = sys.executable
    atomic_write_json(run / "metadata.json", meta)
    out = tmp_path / "out"
    render(run, codec_run=codec, out=out)
    forbidden = ["/work/", "/root/", "/home/", "/tmp/", str(tmp_path), str(FIXTURES)]
    forbidden.append(str(Path(sys.executable).parent))
    for name in ("report.md", "report.html"):
        text = (out / name).read_text()
        leaks = [f for f in forbidden if f in text]
        assert not leaks, f"{name} shows {leaks}"
    md = (out / "report.md").read_text()
    assert "re-render with `pushbench report results/20260101T000000Z-aaaaaa`" in md
    assert "`pushbench run scenarios/quick.toml --out …/results --junit=…/junit.xml`" in md
    assert "pushbench/wire/frames.py:" in md  # the profile still names the module


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/home/ann/src/pushbench/scenarios/quick.toml", "scenarios/quick.toml"),
        ("/work/main/pushbench/wire/frames.py", "pushbench/wire/frames.py"),
        ("/home/ann/.venv/lib/python3.11/site-packages/aiohttp/web.py", "aiohttp/web.py"),
        ("/usr/lib/python3.11/asyncio/events.py", "asyncio/events.py"),
        ("/tmp/tmpab12", "…/tmpab12"),
        ("scenarios/quick.toml", "scenarios/quick.toml"),
    ],
)
def test_a_path_is_shown_from_the_project_or_without_its_prefix(path: str, shown: str) -> None:
    assert paths.shown_path(path) == shown
    assert paths.scrub(f"  12 0.1 {path}:3(f) 1/2 msgs/s") == f"  12 0.1 {shown}:3(f) 1/2 msgs/s"
