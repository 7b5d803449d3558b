"""``stridetwin trainer init|token|tokens|revoke|serve`` as a user runs them."""

from __future__ import annotations

import hashlib
import json
import re
import stat

from cryptography import x509

from stridetwin.cli import main


def test_init_creates_a_ca_a_server_certificate_and_a_hashed_token(tmp_path, capsys):
    d = tmp_path / "t"
    assert main(["trainer", "init", "--dir", str(d), "--clinic", "north", "--hostname", "trainer.example.org",
                 "--hostname", "10.1.2.3"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    token = out.strip().splitlines()[-1]
    assert token.startswith("stt_")
    assert len(token) == 47
    registry = json.loads((d / "clinics.json").read_text())
    assert token not in json.dumps(registry)
    assert list(registry["clinics"]) == ["north"]
    cert = x509.load_pem_x509_certificate((d / "tls" / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "trainer.example.org"} <= set(san.get_values_for_type(x509.DNSName))
    assert {"127.0.0.1", "::1", "10.1.2.3"} <= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    ca = x509.load_pem_x509_certificate((d / "tls" / "ca.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE((d / "tls" / key).stat().st_mode) == 0o600
    for directory in (d, d / "tls"):  # clips and keys live here: owner-only whatever the umask
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert main(["trainer", "init", "--dir", str(d)]) == 2  # never replaces what clients trust
    assert "already exists" in capsys.readouterr().err


def test_token_adds_a_clinic(tmp_path, capsys):
    d = tmp_path / "t"
    assert main(["trainer", "token", "--dir", str(d), "--clinic", "x"]) == 2
    assert "run `stridetwin trainer init" in capsys.readouterr().err
    main(["trainer", "init", "--dir", str(d)])
    capsys.readouterr()
    assert main(["trainer", "token", "--dir", str(d), "--clinic", "south"]) == 0
    assert capsys.readouterr().out.startswith("stt_")
    assert main(["trainer", "token", "--dir", str(d), "--clinic", "Bad Name"]) == 2
    assert "clinic name 'Bad Name'" in capsys.readouterr().err


def test_tokens_lists_ids_never_tokens_and_revoke_removes_one(tmp_path, capsys):
    d = tmp_path / "t"
    main(["trainer", "init", "--dir", str(d), "--clinic", "north"])
    first = capsys.readouterr().out.strip().splitlines()[-1]
    main(["trainer", "token", "--dir", str(d), "--clinic", "south"])
    second = capsys.readouterr().out.strip()
    assert main(["trainer", "tokens", "--dir", str(d)]) == 0
    listing = capsys.readouterr().out
    assert first not in listing and second not in listing  # noqa: PT018
    first_id = hashlib.sha256(first.encode()).hexdigest()[:8]
    assert re.search(rf"^north\s+{first_id}\s", listing, re.MULTILINE)
    assert main(["trainer", "revoke", first_id, "--dir", str(d)]) == 0
    assert "revoked token" in capsys.readouterr().out
    main(["trainer", "tokens", "--dir", str(d)])
    listing = capsys.readouterr().out
    assert first_id not in listing and "south" in listing  # noqa: PT018
    assert main(["trainer", "revoke", first_id, "--dir", str(d)]) == 2
    assert f"no token with id '{first_id}'" in capsys.readouterr().err


def test_serve_refuses_plaintext_off_loopback_and_a_missing_pipeline(tmp_path, capsys):
    d = tmp_path / "t"
    main(["trainer", "init", "--dir", str(d)])
    capsys.readouterr()
    runner = ["--runner", "tests.cloud_trainer.service.runner_double:counting_runner"]
    assert main(["trainer", "serve", "--dir", str(d), "--address", "0.0.0.0:0", "--insecure-loopback", *runner]) == 2
    assert "plaintext is only served on loopback" in capsys.readouterr().err
    assert main(["trainer", "serve", "--dir", str(d), "--runner", "no_such_module:run"]) == 2
    assert "pipeline runner 'no_such_module:run' cannot be imported" in capsys.readouterr().err
    assert main(["trainer", "serve", "--dir", str(tmp_path / "empty")]) == 2
    assert "has no clinics" in capsys.readouterr().err


def test_serve_without_the_trainer_extra_says_what_to_install(tmp_path, capsys, monkeypatch):
    from cloud_trainer.service import runners

    d = tmp_path / "t"
    main(["trainer", "init", "--dir", str(d)])
    capsys.readouterr()
    monkeypatch.setattr(runners, "PIPELINE_DEPENDENCIES", ("torch", "no_such_library_for_this_test"))
    assert main(["trainer", "serve", "--dir", str(d)]) == 2
    err = capsys.readouterr().err
    assert "the patient pipeline needs no_such_library_for_this_test" in err
    assert "pip install -e '.[trainer]'" in err
