"""docs/spec.md has a section for every op, so adding an op means documenting it."""
from pathlib import Path

from archcalc.core.ops import OPS

DOC = (Path(__file__).resolve().parent.parent / "docs" / "spec.md").read_text(encoding="utf-8")


def test_every_op_has_a_section():
    missing = [name for name in OPS if f"\n## {name}\n" not in DOC]
    assert not missing


def test_the_structural_keys_have_sections():
    from archcalc.core.spec import STRUCTURAL
    assert [key for key in STRUCTURAL if f"\n## {key}\n" not in DOC] == []
