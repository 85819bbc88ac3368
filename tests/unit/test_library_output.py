"""A capture that spans a step hands each part of it out once (Capture.take), and commands that are not
builds (`vopt profile`, `vopt verify`) capture through `captured`, which says the summary and lists it."""

from __future__ import annotations

import os
import sys

from vopt.cli.capture import Capture
from vopt.cli.output import RichReporter, captured


def test_take_hands_out_what_came_since_the_last_take_and_stop_the_rest():
    capture = Capture()
    capture.start()
    os.write(2, b"first from C\n")
    print("first from Python")
    first = capture.take()
    os.write(1, b"second from C\n")
    second = capture.take()
    print("last", file=sys.stderr)
    rest = capture.stop()
    assert first.splitlines() == ["first from C", "first from Python"]
    assert second.splitlines() == ["second from C"] and rest.splitlines() == ["last"]
    assert capture.take() == ""  # stopped: nothing more


def test_library_output_gives_a_running_stage_its_summary_once(capfd):
    reporter = RichReporter(debug=False)
    reporter.stage_start("load")
    os.write(2, b'WARNING: failed to run "Gather" op (name is "g"), skip...\n')
    os.write(2, b'WARNING: failed to run "Gather" op (name is "h"), skip...\n')
    lines = reporter.library_output()
    reporter.stage_end("load", cached=False, seconds=1.0, detail="loaded")
    assert lines == [
        (
            "warning",
            "onnxsim: 2 'failed to run' warnings (first: WARNING: failed to run \"Gather\" op "
            '(name is "g"), skip...); --debug shows them',
        )
    ]
    err = capfd.readouterr().err
    assert err.count("warning: onnxsim: 2 'failed to run' warnings") == 1, err  # not again at the stage's end
    assert "WARNING: failed to run" not in err.replace("(first: WARNING: failed to run", "")


def test_captured_says_and_lists_what_a_command_s_libraries_printed(capfd):
    with captured("profile x") as lines:
        os.write(2, b"[ WARNING ] native code wrote this\n")
        print("Loaded pretrained weights for a model")
    assert lines == [
        "openvino: 1 warning (first: [ WARNING ] native code wrote this); --debug shows them",
        "library: 1 line of output (first: Loaded pretrained weights for a model); --debug shows them",
    ]
    err = capfd.readouterr().err
    assert "warning: openvino: 1 warning" in err and "note: library: 1 line of output" in err
    assert "\n[ WARNING ]" not in "\n" + err and "\nLoaded pretrained" not in "\n" + err


def test_captured_with_debug_lets_the_output_through(capfd):
    with captured("profile x", debug=True) as lines:
        os.write(2, b"[ WARNING ] native code wrote this\n")
    assert lines == [] and "[ WARNING ] native code wrote this" in capfd.readouterr().err
