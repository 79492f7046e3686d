from __future__ import annotations

from pathlib import Path

from zfsapi.bootstrap.apidoc import BEGIN, END, markdown
from zfsapi.bootstrap.lifecycle import http_app

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_method_reference_is_generated_from_the_registry():
    text = README.read_text()
    current = text[text.index(BEGIN): text.index(END) + len(END)]
    assert current == markdown(), "run: python -m zfsapi.bootstrap.apidoc and paste it into README.md"


def test_readme_names_the_two_commands():
    text = README.read_text()
    assert "scripts/serve" in text and "scripts/test" in text
    assert "scripts/test" in (README.parent / ".ci" / "run").read_text()


def test_readme_method_table_lists_every_registered_method_once(container):
    text = README.read_text()
    rows = [line.split("|")[1].strip().strip("`") for line in text[text.index(BEGIN): text.index(END)].splitlines()
            if line.startswith("| `")]
    assert sorted(rows) == sorted(m.name for m in http_app(container).state["registry"])


def test_readme_error_table_explains_every_code_the_server_answers():
    from zfsapi.protocol.codes import MEANINGS

    text = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    table = text.split("| code | meaning | data |", 1)[1].split("\n\n", 1)[0]
    missing = [code for code in MEANINGS if str(code) not in table]
    assert not missing, f"README error table lacks {missing}"
