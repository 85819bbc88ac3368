"""Progress as plain lines for a log (vopt.core.progress.ProgressLog, on a given clock), and what
libraries print summarised as one line per source (vopt.cli.capture)."""

from __future__ import annotations

import io
import sys

from vopt.cli.capture import Capture, summarise
from vopt.core.progress import ProgressLog, duration


def test_progress_log_prints_at_most_one_line_per_interval_with_done_total_rate_and_time_left():
    log = ProgressLog(interval=15)
    log.begin_stage("validate", now=0.0)
    task = log.push("validate on qnn-htp-simulator", 500, now=1.0)
    lines = []
    for second in range(2, 200):
        task.done = (second - 1) * 2  # 2 batches a second
        line = log.line(now=float(second))
        if line is not None:
            lines.append((second, line))
    assert [s for s, _ in lines] == list(range(15, 200, 15))  # one every 15 s, none before
    first = lines[0][1]
    assert first == (
        "  validate   validate on qnn-htp-simulator: 28/500 (6%), 2.00/s, 14 s so far, about 3m56s left"
    )
    assert (
        log.pop(task, now=251.0)
        == "  validate   validate on qnn-htp-simulator: 396/500 done in 4m10s, 1.58/s"
    )


def test_progress_log_is_silent_for_short_work_and_says_running_for_uncounted_work():
    log = ProgressLog(interval=10)
    log.begin_stage("export", now=0.0)
    short = log.push("export: tracing and writing ONNX", None, now=0.0)
    assert log.line(now=9.9) is None
    assert log.pop(short, now=9.9) is None  # printed nothing, so no closing line either
    assert log.line(now=12.0) == "  export     running, 12 s"  # the stage itself, with no bar open
    slow = log.push("quantize (nncf, int8)", None, now=12.0)
    assert log.line(now=22.5) == "  export     quantize (nncf, int8): running, 10 s"
    assert log.pop(slow, now=30.0) == "  export     quantize (nncf, int8): done in 18 s"
    log.end_stage()
    assert log.line(now=100.0) is None  # nothing running: nothing to say
    assert ProgressLog(interval=0).line(now=1e9) is None  # VOPT_PROGRESS=0, or a terminal's live bars


def test_progress_log_outside_a_stage_as_tune_and_bench_use_it():
    log = ProgressLog(interval=20)
    task = log.push("tune: build 5 candidates", 5, now=100.0)
    assert log.line(now=110.0) is None
    task.done = 2
    assert (
        log.line(now=120.0) == "  tune: build 5 candidates: 2/5 (40%), 0.10/s, 20 s so far, about 30 s left"
    )
    assert duration(3725) == "1h02m" and duration(59.6) == "1m00s"


def test_summarise_counts_each_source_and_drops_progress_bars():
    onnxsim = [
        f'WARNING: failed to run "Reshape" op (name is "/attn/Reshape_{i}"), skip... no initializer x{i}'
        for i in range(210)
    ]
    text = "\n".join(
        [
            "Statistics collection \x1b[38;2;0;104;181m━━━━━━━━━━━━\x1b[0m 100% 16/16 • 0:00:01 • 0:00:00",
            " 45%|████▌     | 9/20 [00:01<00:02,  5.12it/s]\r 50%|█████     | 10/20 [00:01<00:02,  5.12it/s]",
            *onnxsim,
            "2026-12-07 03:10:00.123456 [W:onnxruntime:, graph.cc:1234 Resolve] Removing initializer 'w'",
            "INFO:nncf:2 ignored nodes were found by names in the NNCFGraph",
            "/x/y/modeling.py:12: TracerWarning: Converting a tensor to a Python boolean",
            "  if x.shape[0] > 1:",
            "Loaded pretrained weights for efficientnet-lite0",
        ]
    )
    summary = summarise(text)
    assert summary.bars == 3  # NNCF's rich bar, and tqdm's two redraws of one line
    lines = dict((t.split(":")[0], (lvl, t)) for lvl, t in summary.lines())
    level, line = lines["onnxsim"]
    assert level == "warning" and line.startswith(
        "onnxsim: 210 'failed to run' warnings "
        '(first: WARNING: failed to run "Reshape" op (name is "/attn/Reshape_0")'
    )
    assert line.endswith("; --debug shows them") and 'Reshape_1"' not in line
    assert lines["onnxruntime"][0] == "warning" and "1 warning or error" in lines["onnxruntime"][1]
    assert (
        lines["nncf"] == ("info", lines["nncf"][1])
        and "nncf: 1 log line (first: INFO:nncf:2" in lines["nncf"][1]
    )
    assert (
        "python: 1 warning (first: /x/y/modeling.py:12: TracerWarning" in lines["python"][1]
    )  # source line joined
    assert lines["library"][1].startswith("library: 1 line of output (first: Loaded pretrained weights")


def test_capture_takes_file_descriptor_and_python_writes_and_gives_the_streams_back(capfd):
    import os

    before = sys.stdout
    capture = Capture()
    capture.start()
    os.write(2, b'WARNING: failed to run "Gather" op (name is "g"), skip...\n')  # what C++ code does
    os.write(1, b"native stdout\n")
    print("python stdout")
    print("python stderr", file=sys.stderr)
    capture.real_stderr.write("vopt's own line\n")
    text = capture.stop()
    assert sys.stdout is before
    assert text.splitlines() == [
        'WARNING: failed to run "Gather" op (name is "g"), skip...',
        "native stdout",
        "python stdout",
        "python stderr",
    ]
    shown = capfd.readouterr()
    assert "vopt's own line" in shown.err and "failed to run" not in shown.err + shown.out
    stream = io.StringIO()
    print("after", file=stream)
    assert stream.getvalue() == "after\n"


def test_parallel_builds_say_they_are_alive_and_children_print_no_progress_lines(tmp_path):
    """`vopt build -j`: a child's output comes in one piece when it ends, so the parent says which builds are
    still running while none ends, and the children leave progress lines out (VOPT_PROGRESS=0)."""
    from pathlib import Path

    from vopt.cli.parallel import run_parallel

    child = [sys.executable, "-c", "import os, time; time.sleep(1.5); print(os.environ['VOPT_PROGRESS'])"]
    waits: list[list[Path]] = []
    done = []
    results = run_parallel(
        [(Path("a.yaml"), child), (Path("b.yaml"), child)],
        2,
        done.append,
        lambda running: waits.append(sorted(r for r, _ in running)),
        interval=0.2,
    )
    assert [r.output.strip() for r in results] == ["0", "0"] and len(done) == 2
    assert [Path("a.yaml"), Path("b.yaml")] in waits
