"""The codec benchmark: adapters are correct, storage is atomic, reports never re-run.

One quick run (tiny ``--min-time``) is shared by the tests that only read its
files; tests that need their own runs use ``--only pushbench`` to stay cheap.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pushbench import cli, results
from pushbench.bench import codec, codec_profile, codec_runner, peers, timing
from pushbench.bench.codec import Case, Workloads
from pushbench.bench.peers.ours import _PureMask
from pushbench.commands import bench_codec
from pushbench.report import codec as report
from pushbench.schema import codec as schema
from pushbench.schema.codec import Record

EXPECTED_FILES = (
    "metadata.json",
    "codec.json",
    "codec.csv",
    "codec-profile.html",
    "codec-profile-pure.html",
    "codec-profile.txt",
    "codec-decode.png",
    "codec-encode.png",
    "codec-125b.png",
    "codec-unmask.png",
    "codec-report.md",
)

TINY = ["--quick", "--min-time", "0.002", "--repeats", "2"]


def _run(out: Path, *extra: str) -> Path:
    """One ``pushbench bench-codec`` run into ``out``; return its run directory."""
    before = set(out.iterdir()) if out.exists() else set()
    assert cli.main(["bench-codec", *TINY, "--out", str(out), *extra]) == 0
    (new,) = [p for p in out.iterdir() if p not in before and p.name != results.LATEST]
    return new


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results")
    start = time.perf_counter()
    run_dir = _run(out, "--profile-time", "0.1")
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"quick benchmark took {elapsed:.1f} s"
    return run_dir


def _digest(directory: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(directory.iterdir())
    }


# --- the stored run -------------------------------------------------------------


def test_quick_run_writes_every_file(quick_run: Path) -> None:
    for name in EXPECTED_FILES:
        path = quick_run / name
        assert path.is_file(), name
        assert path.stat().st_size > 0, name
    # no temporary file left behind by the atomic writes
    assert not [p for p in quick_run.iterdir() if p.name.startswith(".")]
    assert results.resolve_run(quick_run.parent) == quick_run.resolve()
    html = (quick_run / "codec-profile.html").read_text()
    assert html.lstrip().startswith("<!DOCTYPE html>") and "<script>" in html  # self-contained
    profile = (quick_run / "codec-profile.txt").read_text()
    assert "tottime" in profile
    assert "== pushbench (C): cProfile" in profile and "== pushbench (pure): cProfile" in profile


def test_csv_loads_in_pandas(quick_run: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(quick_run / "codec.csv")
    assert tuple(df.columns) == schema.CSV_COLUMNS
    cases = codec.build_cases(codec.QUICK_SIZES, codec.LIBRARIES)
    assert len(df) == len(cases)
    assert set(df["status"]) == {"ok"}, df[df["status"] != "ok"][["case", "notes"]]
    assert df["masked"].dtype == bool
    assert (df["per_frame_us_median"] > 0).all()
    assert (df["per_frame_us_min"] <= df["per_frame_us_median"]).all()
    assert set(df["library"]) >= set(codec.LIBRARIES)
    # MB/s is payload bytes per µs of one frame
    row = df[df["case"] == "decode/masked/125/pushbench"].iloc[0]
    assert row["mb_per_s"] == pytest.approx(125 / row["per_frame_us_median"], rel=1e-3)


def test_json_records_keep_raw_repeats(quick_run: Path) -> None:
    records = schema.load_records(quick_run)
    assert records and all(r.status == "ok" for r in records)
    for r in records:
        assert len(r.repeats_ns) == 2
        assert r.iterations >= 1 and r.frames_per_call >= 1
        per_frame = sorted(ns / (r.iterations * r.frames_per_call) / 1e3 for ns in r.repeats_ns)
        assert r.per_frame_us_min == pytest.approx(per_frame[0], rel=1e-3)


def test_metadata(quick_run: Path) -> None:
    meta = results.read_json(quick_run / "metadata.json")
    assert meta["status"] == "complete"
    assert meta["run_id"] == quick_run.name
    assert meta["finished"] >= meta["started"]
    assert meta["cpu"]["count"] >= 1
    assert meta["python"]["version"]
    assert meta["kernel"]
    assert set(meta["blas_env"]) == set(results.BLAS_ENV_VARS)
    assert isinstance(meta["blas_env_set"], bool)
    assert meta["open_files_limit"]["hard"] is None or meta["open_files_limit"]["hard"] >= 1
    for dist in ("numpy", "websockets", "wsproto", "aiohttp"):
        assert meta["versions"][dist], dist
    assert "dirty" in meta["git"]


def test_report_has_targets_and_profile(quick_run: Path) -> None:
    text = (quick_run / "codec-report.md").read_text()
    assert "## Targets" in text
    assert "decode 125 B masked" in text and "aiohttp-c" in text
    assert "excludes UTF-8 validation" in text
    assert "tottime" in text  # the profile's top functions, as text
    for name in ("codec-decode.png", "codec-encode.png", "codec-125b.png"):
        assert f"({name})" in text


# --- adapters ----------------------------------------------------------------------

SIZES = (0, 16, 125, 126, 65535, 65536)


@pytest.fixture(scope="module")
def workloads() -> Workloads:
    return Workloads()


@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
@pytest.mark.parametrize("op", ["decode", "encode"])
@pytest.mark.parametrize("library", codec.LIBRARIES)
def test_adapter_output_matches_reference(
    library: str, op: str, masked: bool, workloads: Workloads
) -> None:
    """prepare() runs each adapter once and compares with the reference codec."""
    for size in SIZES:
        prepared = codec.prepare(Case(op, masked, size, library), workloads)
        assert prepared.frames == codec.frames_per_call(size)
        prepared.call()  # the timed call runs as prepared


@pytest.mark.parametrize("masker", peers.MASKERS, ids=lambda m: f"{m.library}:{m.variant}")
def test_unmask_kernels_match_reference(masker: peers.Masker, workloads: Workloads) -> None:
    prepared = codec.prepare(
        Case("unmask", True, codec.UNMASK_SIZE, masker.library, masker.variant), workloads
    )
    assert prepared.frames == 1


def test_pure_switch_restores_the_c_helper(workloads: Workloads) -> None:
    from pushbench.wire import speedups

    before = speedups.state()
    codec.prepare(Case("decode", True, 125, "pushbench-py"), workloads).call()
    assert speedups.state() == before


def _broken_peer(base: peers.Peer, mangle: Callable[[list[Any]], list[Any]]) -> peers.Peer:
    def make_decoder(masked: bool) -> peers.Decoder:
        real = base.make_decoder(masked)
        return peers.Decoder(real.decode, lambda out: mangle(real.frames(out)))

    def make_encoder(masked: bool) -> peers.EncodeFn:
        real = base.make_encoder(masked)
        return lambda payloads: mangle(real(payloads))

    return replace(base, name="broken", make_decoder=make_decoder, make_encoder=make_encoder)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda frames: frames[:-1],  # a frame lost
        lambda frames: [*frames[:1], *frames[2:], frames[1]],  # reordered
    ],
    ids=["dropped", "reordered"],
)
@pytest.mark.parametrize("op", ["decode", "encode"])
def test_correctness_check_catches_wrong_output(
    op: str,
    mangle: Callable[[list[Any]], list[Any]],
    workloads: Workloads,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = _broken_peer(peers.peer_by_name("pushbench"), mangle)
    monkeypatch.setattr(peers, "PEERS", (*peers.PEERS, broken))
    with pytest.raises(codec.CheckFailed):
        codec.prepare(Case(op, True, 125, "broken"), workloads)


def test_correctness_check_catches_a_flipped_byte(
    workloads: Workloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    def flip(frames: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        opcode, payload = frames[3]
        return [*frames[:3], (opcode, bytes([payload[0] ^ 1]) + payload[1:]), *frames[4:]]

    base = peers.peer_by_name("websockets")
    broken = replace(
        _broken_peer(base, lambda f: f),
        make_decoder=lambda masked: peers.Decoder(
            base.make_decoder(masked).decode,
            lambda out: flip(base.make_decoder(masked).frames(out)),
        ),
    )
    monkeypatch.setattr(peers, "PEERS", (*peers.PEERS, broken))
    with pytest.raises(codec.CheckFailed, match="frame 3"):
        codec.prepare(Case("decode", False, 16, "broken"), workloads)


def test_a_failed_check_is_recorded_not_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = _broken_peer(peers.peer_by_name("pushbench"), lambda f: f[:-1])
    monkeypatch.setattr(peers, "PEERS", (*peers.PEERS, broken))
    monkeypatch.setattr(codec_runner, "measure", _forbidden)
    (record,) = codec_runner.run_cases([Case("decode", True, 125, "broken")])
    assert record.status == "error"
    assert "frames" in record.notes
    assert record.per_frame_us_median is None


def test_reference_codec_matches_rfc_examples() -> None:
    # RFC 6455 §5.7
    hello_masked = bytes.fromhex("818537fa213d7f9f4d5158")
    assert peers.reference_encode(b"Hello", key=bytes.fromhex("37fa213d"), opcode=1) == (
        hello_masked
    )
    assert peers.reference_decode(hello_masked, masked=True) == [(1, True, b"Hello")]
    assert peers.reference_encode(b"Hello", opcode=1) == bytes.fromhex("810548656c6c6f")
    assert peers.reference_encode(bytes(256))[:4] == bytes.fromhex("827e0100")
    assert peers.reference_encode(bytes(65536))[:10] == bytes.fromhex("827f0000000000010000")
    with pytest.raises(ValueError, match="mask bit"):
        peers.reference_decode(hello_masked, masked=False)


# --- runner ------------------------------------------------------------------------


def _forbidden(*args: object, **kwargs: object) -> Any:
    raise AssertionError("the benchmark runner must not run here")


def test_measure_pauses_gc_and_times_every_repeat() -> None:
    import gc

    seen: list[bool] = []
    got = timing.measure(lambda: seen.append(gc.isenabled()), repeats=3, min_time=0.001)
    assert len(got.repeats_ns) == 3
    assert got.iterations >= 1
    assert all(ns > 0 for ns in got.repeats_ns)
    assert seen and not any(seen)
    assert gc.isenabled()


def test_build_cases_table() -> None:
    cases = codec.build_cases((125,), ["wsproto"])
    table = [c for c in cases if c.op != "unmask"]
    assert {(c.op, c.masked) for c in table} == {
        ("decode", True),
        ("decode", False),
        ("encode", True),
        ("encode", False),
    }
    assert {c.library for c in table} == {"wsproto"}
    # the unmask baselines stay, whatever --only says
    assert {c.library for c in cases if c.op == "unmask"} == set(codec.BASELINES)
    ids = [c.id for c in codec.build_cases()]
    assert len(ids) == len(set(ids))


def test_only_option_is_validated() -> None:
    parser = argparse.ArgumentParser()
    bench_codec.add_arguments(parser)
    assert parser.parse_args(["--only", "wsproto,aiohttp-c"]).only == ["wsproto", "aiohttp-c"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--only", "nosuchlib"])


# --- storage -------------------------------------------------------------------------


def test_second_run_gets_a_new_directory(tmp_path: Path) -> None:
    out = tmp_path / "results"
    first = _run(out, "--only", "pushbench", "--profile-time", "0")
    before = _digest(first)
    assert results.resolve_run(out / results.LATEST) == first.resolve()
    second = _run(out, "--only", "pushbench", "--profile-time", "0")
    assert second != first
    assert _digest(first) == before  # untouched, byte for byte and mtime
    latest = out / results.LATEST
    assert results.resolve_run(latest) == second.resolve()
    assert results.resolve_run(out) == second.resolve()
    if latest.is_symlink():
        assert os.readlink(latest) == second.name  # relative: the tree can move
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_run_ids_never_reuse_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["20260101T000000Z-aaaaaa", "20260101T000000Z-aaaaaa", "20260101T000000Z-bbbbbb"])
    monkeypatch.setattr(results, "new_run_id", lambda now=None: next(ids))
    first = results.new_run_dir(tmp_path)
    (first / "keep").write_text("first")
    second = results.new_run_dir(tmp_path)
    assert (first.name, second.name) == ("20260101T000000Z-aaaaaa", "20260101T000000Z-bbbbbb")
    assert (first / "keep").read_text() == "first"


def test_atomic_write_keeps_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "codec.json"
    results.atomic_write_json(target, {"v": 1})

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        results.atomic_write_json(target, {"v": 2})
    assert results.read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["codec.json"]  # temp file removed


def test_latest_falls_back_to_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = results.new_run_dir(tmp_path)

    def no_symlinks(*args: object, **kwargs: object) -> None:
        raise OSError("symlinks not supported")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    latest = results.update_latest(run_dir)
    assert latest.is_file() and not latest.is_symlink()
    assert latest.read_text().strip() == run_dir.name
    assert results.resolve_run(latest) == run_dir.resolve()
    assert results.resolve_run(tmp_path) == run_dir.resolve()


# --- report ------------------------------------------------------------------------


def test_report_rerenders_from_stored_data_only(
    quick_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / quick_run.name
    shutil.copytree(quick_run, copy)
    rendered = [p for p in copy.iterdir() if p.suffix == ".png" or p.name == "codec-report.md"]
    for p in rendered:
        p.unlink()
    for module, name in (
        (codec_runner, "run_cases"),
        (codec_runner, "measure"),
        (timing, "measure"),
        (timing, "_time_calls"),
        (codec, "prepare"),
        (codec_runner, "prepare"),
        (codec_profile, "profile_decoder"),
    ):
        monkeypatch.setattr(module, name, _forbidden)
    written = report.render(copy)
    assert {p.name for p in written} == {p.name for p in rendered}
    assert all(p.stat().st_size > 0 for p in written)
    assert report.main([str(copy)]) == 0
    # the stored data itself is untouched by rendering
    assert (copy / "codec.json").read_bytes() == (quick_run / "codec.json").read_bytes()


def _record(
    library: str, op: str, masked: bool, payload: int, us: float, variant: str = ""
) -> Record:
    return Record(
        case=f"{op}/{masked}/{payload}/{library}:{variant}",
        library=library,
        variant=variant,
        op=op,
        masked=masked,
        payload=payload,
        status="ok",
        per_frame_us_median=us,
        mb_per_s=payload / us,
    )


def test_targets_verdicts_and_ratios() -> None:
    records = [
        _record("pushbench", "decode", True, 125, 0.9),
        _record("aiohttp-c", "decode", True, 125, 0.5),
        _record("pushbench", "encode", False, 125, 0.6),
        _record("pushbench", "unmask", True, 1 << 20, (1 << 20) / 25e3, "apply_mask_into"),
        _record("websockets", "unmask", True, 1 << 20, (1 << 20) / 30e3, "speedups.apply_mask"),
    ]
    got = {t.name: t for t in report.evaluate_targets(records)}
    assert got["decode 125 B masked"].met is True
    assert got["decode 125 B masked"].comparisons == ("1.80× the time of aiohttp-c (0.5 µs)",)
    ratio = got["decode 125 B masked vs aiohttp-c"]
    assert ratio.met is False and ratio.value == pytest.approx(1.8)
    assert got["decode 125 B masked, pushbench (pure)"].met is None  # not measured
    assert got["encode 125 B server frame (unmasked)"].met is False
    assert got["unmask 1 MiB (apply_mask_into)"].met is True
    assert got["stretch: unmask 1 MiB (apply_mask_into)"].met is True
    assert "0.83× the speed of websockets" in got["unmask 1 MiB (apply_mask_into)"].comparisons[0]
    assert got["unmask 1 MiB (apply_mask)"].met is None  # not measured: said so, not guessed
    text = report.format_targets(list(got.values()))
    assert "NOT MET" in text and "NOT MEASURED" in text


def test_pure_switch_reaches_the_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    """pushbench-py is only pure if the codec reads the C helpers at call time, and the
    "pushbench (C)" row only compiled if decode and encode go through them."""
    from pushbench.wire import frames, speedups

    if not all(speedups.built().values()):
        pytest.skip("the C helpers are not built")
    for name in ("C_MASK", "C_PARSE", "C_ENCODE"):  # restored after the test
        monkeypatch.setattr(speedups, name, getattr(speedups, name))
    speedups.use_speedups(True)
    calls: list[str] = []
    real_parse, real_encode = speedups.C_PARSE, speedups.C_ENCODE

    def parse(*args: Any) -> tuple[int, int]:
        calls.append("parse")
        return real_parse(*args)

    def encode(*args: Any) -> bytes:
        calls.append("encode")
        return real_encode(*args)

    monkeypatch.setattr(speedups, "C_PARSE", parse)
    monkeypatch.setattr(speedups, "C_ENCODE", encode)
    stream = peers.reference_encode(b"x" * 125, key=b"abcd")
    assert frames.FrameReader(masked=True).feed(stream)[0].payload == b"x" * 125
    frames.encode_frame(2, b"y" * 125, mask=True)
    assert calls == ["parse", "encode"]
    with _PureMask():
        assert frames.FrameReader(masked=True).feed(stream)[0].payload == b"x" * 125
        frames.encode_frame(2, b"y" * 125, mask=True)
    assert calls == ["parse", "encode"]  # switched off: the pure path ran
    assert speedups.C_PARSE is parse and speedups.C_ENCODE is encode  # and restored
    speedups.use_speedups(False)  # the process's setting does not reach the "(C)" row
    stream_decoded = peers.peer_by_name("pushbench").make_decoder(True).decode(stream)
    assert stream_decoded[0].payload == b"x" * 125 and speedups.C_PARSE is None
