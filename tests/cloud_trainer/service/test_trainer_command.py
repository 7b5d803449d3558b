"""``stridetwin trainer init|token|serve`` as a user runs them."""

from __future__ import annotations

import json
import stat

import pytest
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


def test_serve_without_the_patient_pipeline_says_so(tmp_path, capsys):
    import importlib.util

    d = tmp_path / "t"
    main(["trainer", "init", "--dir", str(d)])
    capsys.readouterr()
    if importlib.util.find_spec("cloud_trainer.pipeline.run") is not None:
        pytest.skip("the patient pipeline is installed: serve starts (covered by the end-to-end tests)")
    assert main(["trainer", "serve", "--dir", str(d)]) == 2
    err = capsys.readouterr().err
    assert "cloud_trainer.pipeline.run" in err
    assert "The patient pipeline is not part of this build yet" in err
