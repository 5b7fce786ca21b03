"""Bad input: one line FILE:LINE:COL: message, exit code 2, never a traceback.

Each file in bad_specs/ starts with ``# expect: LINE:COL: message``, the exact line the CLI
must print after the file's path.
"""
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archcalc.cli import app

BAD = sorted((Path(__file__).parent / "bad_specs").glob("*.yaml"))
runner = CliRunner()


def expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    return f"{path}:{first.removeprefix('# expect: ')}"


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_spec_gets_its_one_line(path):
    result = runner.invoke(app, ["table", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == expected(path)
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_corpus_covers_the_issue():
    names = {p.stem for p in BAD}
    assert {"not_yaml", "unknown_op", "unknown_arg", "missing_arg", "negative_arg",
            "non_integer_arg", "block_arg_count", "concat_mismatch", "add_mismatch",
            "kernel_too_big", "name_twice", "head_missing_layer"} <= names


def test_unknown_variant_lists_the_ones_there_are():
    result = runner.invoke(app, ["table", "googlenet", "--variant", "naiv"])
    assert result.exit_code == 2
    assert result.stderr.strip().endswith(
        "googlenet.yaml: unknown variant 'naiv'; this spec has: reduced, naive")


def test_missing_file_suggests_bundled_name():
    result = runner.invoke(app, ["table", "googlenat"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("googlenat: no such file, nor a bundled spec of that name — "
                                     "did you mean 'googlenet'? (`archcalc specs` lists them)")


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.yaml"
    path.write_text("input: [3, 8, 8]\nlayers: {a: relu}\n")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)  # chmod would not stop root, as CI runs
    result = runner.invoke(app, ["table", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{path}: cannot read the spec: Permission denied"


def test_unreadable_bytes(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    result = runner.invoke(app, ["table", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}: cannot read the spec:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_input_option():
    result = runner.invoke(app, ["table", "googlenet", "--input", "3x224"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("--input: 'input' must be [channels, height, width] of "
                                     "positive integers, got [3, 224]")


def test_output_into_missing_folder_writes_nothing(tmp_path):
    target = tmp_path / "nope" / "t.csv"
    result = runner.invoke(app, ["table", "googlenet", "-f", "csv", "-o", str(target)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"{target}: cannot write the file: folder "
                                     f"'{target.parent}' does not exist")
    assert not target.parent.exists()
