"""The command line: exit codes, clear errors without tracebacks, help and README coverage."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from contactpipe.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def test_help_documents_the_exit_codes_of_every_command() -> None:
    code, out = run("--help")
    assert code == 0
    for line in (
        "0  the run completed",
        "2  unusable input",
        "3  the rejected share",
        "4  the remote",
    ):
        assert line in out
    for command in main.commands:
        code, out = run(command, "--help")
        assert code == 0, command
        assert "Exit codes" in out, command


def test_every_command_and_option_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    for name, command in main.commands.items():
        assert f"contactpipe {name}" in readme, name
        if name in ("validate", "import", "export", "delete", "migrate", "watch"):
            for param in command.params:
                for opt in param.opts:
                    if opt.startswith("--") and opt not in ("--debug",):
                        assert opt in readme, f"{opt} of {name} is not documented"


def test_validate_writes_the_report_and_prints_json(tmp_path: Path) -> None:
    src = write(tmp_path / "in.csv", "Name,Phone\nAwa,06 12 34 56 78\nBob,12\n")
    code, out = run(
        "validate", str(src), "--region", "fr", "--report-dir", str(tmp_path / "r"), "--json", "-q"
    )
    assert code == 0, out
    summary = json.loads(out)
    assert (summary["rows_read"], summary["valid"], summary["rejected"]) == (2, 1, 1)
    assert summary["by_code"] == {"INVALID_NUMBER": 1}
    for name in ("errors.csv", "warnings.csv", "contacts.csv", "contacts.parquet", "summary.json"):
        assert (tmp_path / "r" / name).is_file()


def test_validate_prints_a_table_and_the_report_path(tmp_path: Path) -> None:
    src = write(tmp_path / "in.csv", "Name,Phone\nAwa,+33612345678\n")
    code, out = run("validate", str(src), "--report-dir", str(tmp_path / "r"), "-q")
    assert code == 0, out
    assert "valid contacts" in out
    assert f"report: {tmp_path / 'r'}" in out


@pytest.mark.parametrize("json_out", [False, True])
def test_an_output_encoding_without_the_file_names_characters_does_not_fail_the_run(
    tmp_path: Path, json_out: bool
) -> None:
    """Under ``PYTHONIOENCODING=ascii`` (or a Windows code page), a run whose file and report
    names hold 'é' printed its summary with an exception and exited 1 after doing its work;
    the names are now escaped, and ``--json`` stays valid JSON."""
    src = write(tmp_path / "Téléphones.csv", "Name,Phone\nAwa,+33612345678\n")
    report = tmp_path / "répertoire"
    args = ["validate", str(src), "--region", "FR", "--report-dir", str(report)]
    done = subprocess.run(
        [sys.executable, "-c", "from contactpipe.cli import main; main()", *args]
        + (["--json"] if json_out else []),
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode("ascii", "replace")
    out = done.stdout.decode("ascii")  # nothing but ASCII reached the stream
    if json_out:
        assert json.loads(out)["files"][0]["file"] == str(src)
    else:
        assert f"report: {str(report).replace('é', chr(92) + 'xe9')}" in out
    assert "r\\xe9pertoire" in done.stderr.decode("ascii")  # the log lines too
    assert (report / "contacts.csv").is_file()


def test_json_log_lines_stay_json_on_an_ascii_stream(tmp_path: Path) -> None:
    """``--log-format json`` on a stream that cannot hold 'é': every line is still JSON."""
    src = write(tmp_path / "in.csv", "Name,Phone\nAwa,+33612345678\n")
    report = tmp_path / "répertoire"
    args = ["validate", str(src), "--region", "FR", "--report-dir", str(report)]
    done = subprocess.run(
        [sys.executable, "-c", "from contactpipe.cli import main; main()", *args,
         "--log-format", "json", "--json"],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode("ascii", "replace")
    lines = [json.loads(ln) for ln in done.stderr.decode("ascii").splitlines() if ln]
    assert any(str(report) in d["message"] for d in lines)  # the report line, é intact


@pytest.mark.parametrize(
    ("files", "extra", "message"),
    [
        (
            {"a.csv": "Name,City\nAwa,Lyon\n"},
            [],
            "a.csv: no phone column found. Headers seen: 'Name', 'City'",
        ),
        ({"a.csv": ""}, [], "a.csv"),
        ({"a.xlsx": "this is not a zip"}, [], "a.xlsx"),
        (
            {"a.csv": "Phone\n+33612345678\n"},
            ["--region", "XX"],
            "--region 'XX' is not a region code",
        ),
        ({}, [], "missing.csv"),
    ],
)
def test_unusable_input_exits_2_with_one_clear_line(
    tmp_path: Path, files: dict[str, str], extra: list[str], message: str
) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    target = str(tmp_path / (next(iter(files)) if files else "missing.csv"))
    code, out = run("validate", target, "--report-dir", str(tmp_path / "r"), "-q", *extra)
    assert code == 2, out
    assert message in out
    assert "Traceback" not in out


def test_a_mapping_without_phone_and_a_bad_mapping_file_exit_2(tmp_path: Path) -> None:
    src = write(tmp_path / "a.csv", "Who,Num\nAwa,+33612345678\n")
    mapping = write(tmp_path / "m.json", '{"Num": "fone"}')
    code, out = run(
        "validate", str(src), "--mapping", str(mapping), "-q", "--report-dir", str(tmp_path / "r")
    )
    assert code == 2 and "unknown field 'fone'" in out
    write(mapping, '{"Num": "phone", "Who": "name"}')
    code, out = run(
        "validate", str(src), "--mapping", str(mapping), "-q", "--report-dir", str(tmp_path / "r")
    )
    assert code == 0, out


def test_max_error_rate_exits_3_after_writing_the_report(tmp_path: Path) -> None:
    src = write(tmp_path / "a.csv", "Name,Phone\nA,+33612345678\nB,nope\nC,\n")
    report = tmp_path / "r"
    code, out = run(
        "validate", str(src), "--max-error-rate", "0.5", "--report-dir", str(report), "-q"
    )
    assert code == 3, out
    assert re.search(r"66\.7% of rows rejected, above --max-error-rate 50\.0%", out)
    assert json.loads((report / "summary.json").read_text("utf-8"))["rejected"] == 2
    code, _ = run(
        "validate", str(src), "--max-error-rate", "0.7", "--report-dir", str(report), "-q"
    )
    assert code == 0


def test_country_column_option(tmp_path: Path) -> None:
    src = write(tmp_path / "a.csv", "Name,Phone,Where\nA,0707070707,CI\nB,06 12 34 56 78,FR\n")
    code, out = run(
        "validate",
        str(src),
        "--country-column",
        "Where",
        "--json",
        "-q",
        "--report-dir",
        str(tmp_path / "r"),
    )
    assert code == 0, out
    assert json.loads(out)["valid"] == 2
    code, out = run(
        "validate", str(src), "--country-column", "Nope", "-q", "--report-dir", str(tmp_path / "r")
    )
    assert code == 2 and "--country-column 'Nope': no such column" in out


@contextmanager
def sandbox_process(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`contactpipe sandbox` in a child process on a free port of 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "contactpipe.cli", "sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sandbox_command_serves_all_three_apis_over_http() -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MSGFLASH_", "WAAPI_", "VOBIZ_"))
    }
    with sandbox_process(env) as (proc, port):
        lines = [proc.stdout.readline() for _ in range(5)]  # type: ignore[union-attr]
        assert lines[0].startswith(f"MsgFlash: http://127.0.0.1:{port}")
        assert lines[1].strip() == f"export MSGFLASH_BASE_URL=http://127.0.0.1:{port}"
        key = next(line.split("=", 1)[1].strip() for line in lines if "MSGFLASH_API_KEY=" in line)
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/contacts", headers={"x-api-key": key}
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "sandbox did not start"
                time.sleep(0.1)
        assert r.status_code == 200
        assert r.json()["data"]["contacts"] == []
        bad = httpx.get(f"http://127.0.0.1:{port}/api/v1/contacts", headers={"x-api-key": "nope"})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "UNAUTHORIZED"


def test_sandbox_never_echoes_a_key_or_token_taken_from_the_environment() -> None:
    key = "msgf_live_" + "ab" * 32
    env = {**os.environ, "MSGFLASH_API_KEY": key, "WAAPI_TOKEN": "tok-from-env-123456"}
    with sandbox_process(env) as (proc, _):
        lines = [proc.stdout.readline() for _ in range(11)]  # type: ignore[union-attr]
    text = "".join(lines)
    assert "MSGFLASH_API_KEY: taken from your environment (not shown)" in text
    assert "WAAPI_TOKEN: taken from your environment (not shown)" in text
    assert key not in text and "tok-from-env-123456" not in text
    assert "export VOBIZ_AUTH_TOKEN=vobiz_sandbox_" in text  # built-in sandbox values are shown
