"""Published benchmark files as evaluation items: ``gptground eval --benchmark NAME``.

A benchmark's own files go straight to evaluation, with no conversion to GPTGround records
first. Each entry names the reader (:mod:`gptground.eval.benchmarks`), the task it is
scored as, and the side file it needs, if any (``--benchmark-meta``):

    charades_sta          charades_sta_test.txt; meta: Charades_v1_test.csv (durations;
                          without it spans are not clipped and durations come from the videos)
    activitynet_captions  val_1.json / val_2.json
    didemo                test_data.json
    refcoco               refs(unc).json (the refs list as JSON); meta: instances.json
                          (required); ``--split`` val / testA / testB / test
    shikra_rec            Shikra's REC JSONL (pixel corners)
    minigptv2_ref         MiniGPT-v2's RefCOCO evaluation JSON list

This module is plain data and imports no readers: ``gptground eval --help`` lists the names
without importing torch; :func:`read_benchmark_items` imports them when it runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchmarkFile:
    """How one benchmark's file is read.

    Attributes:
        task: the evaluation task its items are scored as.
        meta: what ``--benchmark-meta`` is for this benchmark ("" = takes none).
        meta_required: whether it must be given.
        splits: whether ``--split`` selects part of the file.
    """

    task: str
    meta: str = ""
    meta_required: bool = False
    splits: bool = False


BENCHMARK_FILES: dict[str, BenchmarkFile] = {
    "charades_sta": BenchmarkFile("tvg", meta="Charades_v1_{train,test}.csv: video durations"),
    "activitynet_captions": BenchmarkFile("tvg"),
    "didemo": BenchmarkFile("tvg"),
    "refcoco": BenchmarkFile("rec", meta="the instances.json next to the refs", meta_required=True, splits=True),
    "shikra_rec": BenchmarkFile("rec"),
    "minigptv2_ref": BenchmarkFile("rec"),
}


def benchmark_file(name: str) -> BenchmarkFile:
    """The entry of ``name``; ValueError naming the benchmarks otherwise."""
    if name not in BENCHMARK_FILES:
        raise ValueError(f"unknown benchmark {name!r}; one of {', '.join(BENCHMARK_FILES)}")
    return BENCHMARK_FILES[name]


def check_benchmark_options(name: str, meta: str | None, split: str | None) -> BenchmarkFile:
    """The entry of ``name`` after checking that ``meta`` and ``split`` fit it."""
    entry = benchmark_file(name)
    if entry.meta_required and not meta:
        raise ValueError(f"--benchmark {name} needs --benchmark-meta: {entry.meta}")
    if meta and not entry.meta:
        raise ValueError(f"--benchmark {name} takes no --benchmark-meta (got {meta!r})")
    if split and not entry.splits:
        raise ValueError(f"--benchmark {name} has no --split (got {split!r})")
    return entry


def read_benchmark_items(name: str, path: str, meta: str | None = None, split: str | None = None) -> Iterable:
    """The benchmark reader's typed items (RecItem / MomentItem) of ``path``."""
    from gptground.eval import benchmarks

    check_benchmark_options(name, meta, split)
    if name == "charades_sta":
        durations = benchmarks.read_charades_durations(meta) if meta else None
        return benchmarks.read_charades_sta(path, durations=durations)
    if name == "activitynet_captions":
        return benchmarks.read_activitynet_captions(path)
    if name == "didemo":
        return benchmarks.read_didemo(path)
    if name == "refcoco":
        return benchmarks.read_refer(path, meta, split=split)
    if name == "shikra_rec":
        return benchmarks.read_shikra_rec(path)
    return benchmarks.read_minigptv2_ref(path)
