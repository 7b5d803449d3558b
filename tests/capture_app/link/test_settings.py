"""Connection settings: flag over environment over settings file over default; TLS unless plaintext is asked for on
the command line, and then only to loopback; a token in a settings file others can read is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from capture_app.link.backoff import Backoff
from capture_app.link.errors import LinkConfigError
from capture_app.link.settings import DEFAULT_SERVER, LinkSettings, resolve_settings


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("flag", "env", "file"):
        ca = tmp_path / f"{name}-ca.pem"
        ca.write_text("-----BEGIN CERTIFICATE-----\n")
        token = tmp_path / f"{name}.token"
        token.write_text(f"stt_{name}\n")
        out[f"{name}_ca"], out[f"{name}_token"] = ca, token
    config = tmp_path / "link.toml"
    config.write_text(f'server = "file.example:1"\nca_cert = "file-ca.pem"\ntoken_file = "{out["file_token"]}"\n')
    out["config"] = config
    return out


def test_flags_beat_the_environment_which_beats_the_file(files) -> None:
    env = {"STRIDETWIN_SERVER": "env.example:2", "STRIDETWIN_CA_CERT": str(files["env_ca"]),
           "STRIDETWIN_TOKEN_FILE": str(files["env_token"])}  # fmt: skip
    from_file = resolve_settings(config_path=files["config"], environ={})
    assert (from_file.server, from_file.ca_cert, from_file.token) == ("file.example:1", files["file_ca"], "stt_file")
    from_env = resolve_settings(config_path=files["config"], environ=env)
    assert (from_env.server, from_env.ca_cert, from_env.token) == ("env.example:2", files["env_ca"], "stt_env")
    from_flags = resolve_settings(server="flag.example:3", ca_cert=files["flag_ca"], token_file=files["flag_token"],
                                  config_path=files["config"], environ=env)  # fmt: skip
    assert (from_flags.server, from_flags.ca_cert, from_flags.token) == ("flag.example:3", files["flag_ca"], "stt_flag")
    assert dict(from_flags.sources) == {"server": "flag", "ca_cert": "flag", "token": "flag"}
    mixed = resolve_settings(server="flag.example:3", config_path=files["config"],
                             environ={"STRIDETWIN_TOKEN": "stt_direct"})  # fmt: skip
    assert dict(mixed.sources) == {"server": "flag", "ca_cert": "file", "token": "env"}
    assert mixed.token == "stt_direct"


def test_defaults_and_what_is_missing(tmp_path: Path) -> None:
    settings = resolve_settings(config_path=tmp_path / "none.toml", environ={})
    assert settings.server == DEFAULT_SERVER
    assert not settings.insecure_loopback
    with pytest.raises(LinkConfigError, match="no CA certificate for TLS"):
        settings.validate()
    with pytest.raises(LinkConfigError, match="no clinic token"):
        LinkSettings(insecure_loopback=True).validate()


@pytest.mark.parametrize("server", ["127.0.0.1:50051", "localhost:1", "[::1]:50051", "127.3.4.5:9"])
def test_plaintext_is_allowed_to_loopback(server: str) -> None:
    LinkSettings(server=server, token="stt_x", insecure_loopback=True).validate()


@pytest.mark.parametrize("server", ["10.0.0.5:50051", "trainer.example.org:50051", "0.0.0.0:1"])
def test_plaintext_is_refused_anywhere_else(server: str) -> None:
    with pytest.raises(LinkConfigError, match=r"only allowed to 127\.0\.0\.1"):
        LinkSettings(server=server, token="stt_x", insecure_loopback=True).validate()


def test_plaintext_cannot_come_from_the_environment_or_the_file(tmp_path: Path) -> None:
    config = tmp_path / "link.toml"
    config.write_text("insecure_loopback = true\n")
    with pytest.raises(LinkConfigError, match="unknown key"):
        resolve_settings(config_path=config, environ={})
    assert not resolve_settings(config_path=tmp_path / "x.toml", environ={"STRIDETWIN_INSECURE": "1"}).insecure_loopback


def test_a_token_in_a_readable_settings_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "link.toml"
    config.write_text('token = "stt_secret"\n')
    config.chmod(0o644)
    with pytest.raises(LinkConfigError, match="chmod 600"):
        resolve_settings(config_path=config, environ={})
    config.chmod(0o600)
    assert resolve_settings(config_path=config, environ={}).token == "stt_secret"


def test_bad_addresses_and_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(LinkConfigError, match="HOST:PORT"):
        LinkSettings(server="trainer", token="t", insecure_loopback=True).validate()
    with pytest.raises(LinkConfigError, match="does not exist"):
        LinkSettings(ca_cert=tmp_path / "missing.pem", token="t").validate()
    with pytest.raises(LinkConfigError, match="cannot be read"):
        resolve_settings(token_file=tmp_path / "missing.token", config_path=tmp_path / "x.toml", environ={})


def test_backoff_grows_to_its_ceiling_with_bounded_jitter() -> None:
    import random

    backoff = Backoff(initial_s=1.0, multiplier=1.6, max_s=120.0, jitter=0.2)
    rng = random.Random(0)
    for attempt in range(1, 30):
        base = min(120.0, 1.6 ** (attempt - 1))
        delays = [backoff.delay_s(attempt, rng) for _ in range(50)]
        assert all(0.8 * base <= d <= 1.2 * base for d in delays)
        assert max(delays) - min(delays) > 0.1 * base  # jittered, not constant
    with pytest.raises(ValueError, match="multiplier"):
        Backoff(multiplier=0.5)
