"""The exit codes the README lists are the ones the CLI returns, and only those."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tierzero.cli import main as cli_main
from tierzero.cli import output

README = Path(__file__).resolve().parents[2] / "README.md"


def _cli(argv: list[str]) -> int:
    cli_main._register()
    return output.invoke(cli_main.app, argv)


def _spec(tmp_path: Path) -> str:
    assert _cli(["init", str(tmp_path)]) == 0
    return str(tmp_path / "tierzero.yaml")


def test_the_readme_lists_exactly_the_codes_the_cli_returns() -> None:
    sentence = re.search(r"Exit codes: (.*?)\. Tracebacks", README.read_text(), re.S)
    assert sentence, "the README's exit-code sentence"
    assert {int(c) for c in re.findall(r"`(\d+)`", sentence.group(1))} == {0, 1, 2, 70, 130}


def test_each_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    spec = _spec(tmp_path)
    assert _cli(["check", "-f", spec]) == 0
    charged = tmp_path / "charged.yaml"  # 2 x 4 OCPU: four times the A1 allowance
    charged.write_text(Path(spec).read_text().replace("ocpus: 1,", "ocpus: 4,"))
    assert _cli(["check", "-f", str(charged)]) == 1
    assert _cli(["check", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert _cli(["check", "-f", spec, "--no-such-flag"]) == 2
    assert _cli(["deploy", "-f", spec, "--target", "sandbox", "--only", "nope"]) == 2
    capsys.readouterr()

    def internal_bug(*args, **kwargs):
        raise RuntimeError("an unexpected state")

    monkeypatch.setattr("tierzero.spec.load_spec", internal_bug)
    assert _cli(["check", "-f", spec]) == 70
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: an unexpected state" in err and "Traceback" not in err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("tierzero.spec.load_spec", interrupted)
    assert _cli(["check", "-f", spec]) == 130


@pytest.mark.parametrize("debug", [False, True])
def test_every_error_line_is_masked_by_the_process_redactor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture, debug: bool) -> None:
    from tierzero.adapters.redact import process_redactor
    from tierzero.errors import OperationError

    spec = _spec(tmp_path)
    process_redactor().add("resolved-secret-31415")
    capsys.readouterr()

    def leaks_in_a_bug(*args, **kwargs):
        raise RuntimeError("connect failed for token resolved-secret-31415")

    def leaks_in_an_error(*args, **kwargs):
        raise OperationError("the API answered 401 to resolved-secret-31415", hint="check resolved-secret-31415")

    flags = ["--debug"] if debug else []
    for fault, code in ((leaks_in_a_bug, 70), (leaks_in_an_error, 1)):
        monkeypatch.setattr("tierzero.spec.load_spec", fault)
        assert _cli([*flags, "check", "-f", spec]) == code
        err = capsys.readouterr().err
        assert "resolved-secret-31415" not in err and "***" in err, err
