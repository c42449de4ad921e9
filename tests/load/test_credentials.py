"""Credentials and base URLs are checked before any request: a credential an HTTP header cannot
carry is refused naming its variable (exit 2), only literal loopback addresses and
``localhost`` itself may use plain http, and ``migrate`` names the option it was given."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from load_helpers import sandbox_env

from contactpipe.cli import main
from contactpipe.errors import UsageError
from contactpipe.load.config import check_base_url, is_loopback
from contactpipe.load.targets import get
from contactpipe.sandbox import SandboxServer

BAD = {
    "newline": ("tok\nen-1234567890", "a line break"),
    "non-ascii": ("tokén-1234567890", "a non-ASCII character"),
    "control": ("tok\x1ben-1234567890", "a control character"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize(
    "target,var",
    [("waapi", "WAAPI_TOKEN"), ("vobiz", "VOBIZ_AUTH_TOKEN"), ("msgflash", "MSGFLASH_API_KEY")],
)
def test_malformed_credential_is_refused_before_any_request(
    server: SandboxServer, tmp_path, monkeypatch, target: str, var: str, kind: str
) -> None:
    value, what = BAD[kind]
    for k, v in sandbox_env(server).items():
        monkeypatch.setenv(k, v)
    if target == "msgflash":
        value = "msgf_live_" + value
    monkeypatch.setenv(var, value)
    src = tmp_path / "in.csv"
    src.write_text("Name,Phone\nAna,+33612345678\n", "utf-8")
    args = ["import", str(src), "--target", target, "-q", "--report-dir", str(tmp_path / "r")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    position = 4 + (len(value) - len(BAD[kind][0]))  # after msgflash's key prefix
    assert f"{var} contains {what} at position {position};" in result.output
    assert "nothing was sent" in result.output
    assert value.strip() not in result.output and "1234567890" not in result.output
    assert server.app.journal.entries() == []


def test_a_header_built_from_a_variable_is_checked_too() -> None:
    cls = get("msgflash")
    env = {"MSGFLASH_API_KEY": "msgf_team_abcdefghij", "MSGFLASH_TEAM_ID": "team\r\nX-Evil: 1"}
    with pytest.raises(UsageError, match="a line break"):
        cls.config_from_env(env, None)


@pytest.mark.parametrize(
    "host,loopback",
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("[::1]", True),
        ("api.localhost", False),
        ("localhost.localdomain", False),
        ("localhost.evil.com", False),
        ("10.0.0.1", False),
    ],
)
def test_only_literal_loopback_and_localhost_skip_tls(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    url = f"http://{host}:8900/api"
    if loopback:
        assert check_base_url(url, "--base-url") == url
    else:
        with pytest.raises(UsageError, match="--base-url: plain http:// is only allowed"):
            check_base_url(url, "--base-url")


@pytest.mark.parametrize("option", ["--from-base-url", "--to-base-url"])
def test_migrate_names_the_base_url_option_given(option: str, tmp_path) -> None:
    args = ["migrate", "--from", "msgflash", "--to", "waapi", option, "http://x.localhost/api"]
    result = CliRunner().invoke(main, [*args, "--report-dir", str(tmp_path / "m"), "-q"])
    assert result.exit_code == 2, result.output
    assert f"{option}: plain http:// is only allowed for loopback hosts" in result.output
