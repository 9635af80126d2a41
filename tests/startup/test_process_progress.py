"""``sibyls process``'s progress: one line redrawn on a terminal, plain lines in a log."""

from __future__ import annotations

import io

from sibyls.startup.cli import _ProgressLine


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_one_line_is_redrawn_and_ended_once():
    stream = _Terminal()
    progress = _ProgressLine(stream)
    for i in range(1, 4):
        progress(i, 3, f"scan {i} prot (abcd123{i}) ok")
    progress.end()
    text = stream.getvalue()
    assert text.count("\r") == 3 and text.count("\n") == 1
    assert text.endswith("3/3 scan 3 prot (abcd1233) ok\n")
    assert "[" + "#" * 30 + "]" in text


def test_in_a_log_each_run_is_a_plain_line():
    stream = io.StringIO()
    progress = _ProgressLine(stream)
    progress(1, 2, "scan 1 a (1) ok")
    progress(2, 2, "scan 2 b (2) failed (no frames)")
    progress.end()
    lines = stream.getvalue().splitlines()
    assert lines == ["[1/2] scan 1 a (1) ok", "[2/2] scan 2 b (2) failed (no frames)"]
