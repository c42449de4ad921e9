"""README's "Python API" section runs: its code blocks, in order, against the sandbox on
127.0.0.1 with the sandbox's variables in the environment, as a user would run them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from load_helpers import sandbox_env

from contactpipe.sandbox import SandboxServer

README = Path(__file__).resolve().parents[2] / "README.md"


def api_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_python_api_example_runs(
    server: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = api_blocks()
    assert len(blocks) >= 2 and "import contactpipe" in blocks[0]
    for var, value in sandbox_env(server).items():
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path)
    rows = ["Nom,Téléphone", *(f"Client {i},06 12 34 56 {i:02d}" for i in range(30))]
    Path("contacts.csv").write_text("\n".join([*rows, "Bad,12", ""]), encoding="utf-8")

    namespace: dict[str, object] = {"__name__": "readme"}
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)

    out = capsys.readouterr().out
    assert "30 valid, 1 rejected" in out
    assert "30 loaded, 0 failed, exit code 0" in out
    assert "30 contacts -> reports/waapi.parquet" in out
    assert len(server.app.state.waapi.contacts) == 30  # the dry-run delete deleted nothing
    assert Path("reports/contacts/summary.json").is_file()
    assert Path("reports/waapi.parquet").is_file()
