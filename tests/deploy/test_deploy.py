"""What can be checked of deploy/ without Docker (there is no Docker daemon on the development machine): the
Dockerfile's sources and entry point exist and match the project, hadolint (when installed), the systemd unit with
`systemd-analyze verify` (when available), the Ray cluster file with Ray's own validation, and the health probe
against a real trainer."""

from __future__ import annotations

import configparser
import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from stridetwin.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics for the patterns used here: later patterns win, ``!`` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if pat == "**" or fnmatch.fnmatch(path, pat) or path.startswith(pat + "/") or fnmatch.fnmatch(
                path, pat.replace("**/", "*/")):  # fmt: skip
            ignored = not negate
    return ignored


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    patterns = [p.strip() for p in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]  # fmt: skip
    copies = [args for word, args in _dockerfile() if word == "COPY" and not args.startswith("--from")]
    assert copies
    for args in copies:
        *sources, _dest = shlex.split(args)
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such path in the repository"
            assert not _ignored(source, patterns), f"COPY {source} is excluded by Dockerfile.dockerignore"
    packages = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = {shlex.split(a)[0] for a in copies}
    for pattern in packages:
        assert pattern.rstrip("*") in copied, f"package {pattern} is installed by pyproject but not copied"


def test_entry_point_and_command_are_the_trainer_serving_on_the_network() -> None:
    instructions = dict(_dockerfile())  # each of these appears once
    entry = instructions["ENTRYPOINT"]
    cmd = instructions["CMD"]
    import json

    argv = json.loads(entry) + json.loads(cmd)
    assert argv[0] in _pyproject()["project"]["scripts"]  # the console script pip installs
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.trainer_command) == ("trainer", "serve")
    assert args.address == "0.0.0.0:50051"
    assert not args.insecure_loopback  # TLS in the container
    assert "50051" in instructions["EXPOSE"]


def test_the_image_pins_cpu_torch_installs_the_trainer_extra_and_runs_unprivileged() -> None:
    steps = _dockerfile()
    runs = " ".join(args for word, args in steps if word == "RUN")
    extras = _pyproject()["project"]["optional-dependencies"]
    assert "torch==2.13.0" in extras["trainer"]
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in runs
    assert 'pip install ".[trainer]"' in runs
    user = [args for word, args in steps if word == "USER"][-1]
    uid = user.split(":")[0]
    assert uid.isdigit()
    assert int(uid) >= 1000
    assert any(word == "VOLUME" and "/data" in args for word, args in steps)
    health = [args for word, args in steps if word == "HEALTHCHECK"]
    assert health
    assert "healthcheck.py" in health[0]
    assert any(word == "COPY" and args.startswith("deploy/healthcheck.py") for word, args in steps)


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint is not installed")
def test_hadolint_finds_nothing() -> None:
    out = subprocess.run(["hadolint", str(DEPLOY / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    parser.read(DEPLOY / "stridetwin-trainer.service")
    return parser


def test_the_unit_is_hardened_and_writes_only_its_state_directory() -> None:
    service = _unit()["Service"]
    assert service["User"] not in ("root", "0")
    expected = {
        "ProtectSystem": "strict", "NoNewPrivileges": "yes", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes", "UMask": "0077",
        "StateDirectory": "stridetwin-trainer", "StateDirectoryMode": "0700",
    }  # fmt: skip
    for key, value in expected.items():
        assert service[key] == value, key
    assert service["ReadWritePaths"] == "/var/lib/stridetwin-trainer"
    assert "STRIDETWIN_TRAINER_DIR=/var/lib/stridetwin-trainer" in (DEPLOY / "stridetwin-trainer.service").read_text()
    argv = shlex.split(service["ExecStart"])
    args = build_parser().parse_args(argv[1:])
    assert args.trainer_command == "serve"
    assert service["KillSignal"] == "SIGTERM"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not available")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    text = (DEPLOY / "stridetwin-trainer.service").read_text()
    # The venv does not exist here; point ExecStart at a binary that does, keeping everything else.
    unit = tmp_path / "stridetwin-trainer.service"
    unit.write_text(text.replace("/opt/stridetwin/bin/stridetwin", shutil.which("true") or "/bin/true"))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    problems = [line for line in (out.stdout + out.stderr).splitlines() if "stridetwin-trainer" in line]
    assert out.returncode == 0, out.stdout + out.stderr
    assert not problems, problems


def test_the_ray_cluster_file_passes_rays_validation() -> None:
    pytest.importorskip("ray")
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((DEPLOY / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` does first
    setup = " ".join(config["setup_commands"])
    assert "torch==2.13.0" in setup
    extras = _pyproject()["project"]["optional-dependencies"]
    for extra in re.search(r"\[([a-z,]+)\]'", setup).group(1).split(","):
        assert extra in extras


def test_the_health_probe_says_serving_and_not_serving(tmp_path: Path) -> None:
    from stridetwin.loopback import LoopbackTrainer

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    probe = [sys.executable, str(DEPLOY / "healthcheck.py")]
    with LoopbackTrainer(tmp_path / "trainer") as trainer:
        env["STRIDETWIN_TRAINER_DIR"] = str(trainer.data_dir)
        ok = subprocess.run([*probe, "--address", f"localhost:{trainer.port}"], env=env, capture_output=True,
                            text=True, cwd=REPO)  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        assert "SERVING" in ok.stdout
        port = trainer.port
    down = subprocess.run([*probe, "--address", f"localhost:{port}", "--timeout", "1"], env=env, capture_output=True,
                          text=True, cwd=REPO)  # fmt: skip
    assert down.returncode == 1
    assert "UNAVAILABLE" in down.stderr
    missing = subprocess.run([*probe, "--ca-cert", str(tmp_path / "none.pem")], env=env, capture_output=True, text=True,
                             cwd=REPO)  # fmt: skip
    assert missing.returncode == 2
