"""`make bench` re-renders docs/benchmarks.md and keeps the hand-written part below the marker."""

from __future__ import annotations

from pathlib import Path

from tally.bench import report


def test_write_keeps_the_hand_written_part(tmp_path: Path) -> None:
    hand = f"{report.HAND_WRITTEN_MARKER} by hand -->\n\n## Notes\n\nA figure, with its command.\n"
    (tmp_path / report.MD_NAME).write_text("# Benchmarks\n\nold generated text\n\n" + hand)

    _, md = report.write(tmp_path, "memory_extra", {"anything": 1})

    text = md.read_text()
    assert text.endswith(hand)
    assert "old generated text" not in text
    assert text.count(report.HAND_WRITTEN_MARKER) == 1


def test_write_without_a_hand_written_part(tmp_path: Path) -> None:
    _, md = report.write(tmp_path, "memory_extra", {"anything": 1})

    assert report.HAND_WRITTEN_MARKER not in md.read_text()
    assert md.read_text().startswith("# Benchmarks\n")
