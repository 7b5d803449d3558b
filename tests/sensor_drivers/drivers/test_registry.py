"""Source strings → drivers, and every error message a user can get."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sensor_drivers.drivers.base import Driver
from sensor_drivers.drivers.ble import BleDriver
from sensor_drivers.drivers.fake_gatt import FakePeripheral, FakeRadio
from sensor_drivers.drivers.kit import KitDriver
from sensor_drivers.drivers.pty_server import PtyServer
from sensor_drivers.drivers.registry import (
    BleProtocolSpec,
    DriverRegistry,
    SerialProtocolSpec,
    Source,
    SourceOptions,
    build_driver,
    parse_source,
)
from sensor_drivers.drivers.serial import SerialDriver
from sensor_drivers.errors import SourceError
from sensor_drivers.sample import LinkState
from sensor_drivers.sites import Site
from tests.sensor_drivers.drivers import toy_protocol as toy
from tests.sensor_drivers.drivers.streams import collect, drain, samples

SITES = "pelvis, thigh_l, thigh_r, shank_l, shank_r"


def toy_registry(radio: FakeRadio | None = None, **kwargs: object) -> DriverRegistry:
    kwargs.setdefault("builtin_protocols", False)
    registry = DriverRegistry(client_factory=(radio or FakeRadio()).client_factory, **kwargs)  # type: ignore[arg-type]
    registry.register_serial_protocol(
        SerialProtocolSpec(
            name="toy",
            description="test protocol",
            make_decoder=toy.ToyDecoder,
            start_writes=toy.start_bytes,
            default_baud=230400,
            seq_modulus=toy.SEQ_MODULUS,
            make_encoder=toy.ToyEncoder,
        )
    )
    registry.register_ble_protocol(
        BleProtocolSpec(
            name="toy-ble",
            description="test protocol over BLE",
            make_profile=lambda rate_hz: toy.ToyBleProfile(rate_hz),
            default_rate_hz=100.0,
            seq_modulus=toy.SEQ_MODULUS,
            make_emulator=toy.ToyBleEmulator,
        )
    )
    return registry


# -- parsing and building -------------------------------------------------------------------------------------------


def test_parse_source_splits_scheme_target_and_decoded_options() -> None:
    source = parse_source("  Serial:/dev/my%20port?protocol=toy&Site=pelvis&rate=100  ")
    assert source == Source(
        text="Serial:/dev/my%20port?protocol=toy&Site=pelvis&rate=100",
        scheme="serial",
        target="/dev/my port",
        options={"protocol": "toy", "site": "pelvis", "rate": "100"},
    )
    assert parse_source("ble:AA:BB:CC:DD:EE:FF").target == "AA:BB:CC:DD:EE:FF"


def test_serial_source_builds_a_configured_serial_driver() -> None:
    driver = toy_registry().build("serial:/dev/ttyUSB3?protocol=toy&site=thigh_l&baud=9600&rate=100&id=left-thigh")
    assert isinstance(driver, SerialDriver)
    assert driver.port == "/dev/ttyUSB3"
    assert driver.options.baud_rate == 9600
    assert driver.start_writes == (b"RATE 100\n",)
    [info] = driver.sensors
    assert (info.sensor_id, info.site, info.transport, info.protocol, info.nominal_rate_hz) == (
        "left-thigh",
        Site.THIGH_L,
        "serial",
        "toy",
        100.0,
    )
    default = toy_registry().build("serial:/dev/ttyUSB3?protocol=TOY")
    assert isinstance(default, SerialDriver)
    assert default.options.baud_rate == 230400  # the protocol's default
    assert default.start_writes == ()
    assert default.sensors[0].site is Site.PELVIS  # documented default
    assert default.sensors[0].sensor_id == "/dev/ttyUSB3"


def test_ble_source_builds_a_configured_ble_driver() -> None:
    radio = FakeRadio()
    driver = toy_registry(radio).build("ble:aa:bb:cc:dd:ee:0f?protocol=toy-ble&site=shank_r&rate=50&adapter=hci1")
    assert isinstance(driver, BleDriver)
    assert driver.address == "AA:BB:CC:DD:EE:0F"
    assert driver.options.adapter == "hci1"
    assert isinstance(driver.profile, toy.ToyBleProfile)
    assert driver.profile.rate_hz == 50
    [info] = driver.sensors
    assert (info.site, info.transport, info.protocol, info.nominal_rate_hz) == (Site.SHANK_R, "ble", "toy-ble", 50.0)
    uuid_driver = toy_registry(radio).build("ble:12345678-9ABC-DEF0-1234-56789ABCDEF0?protocol=toy-ble")
    assert isinstance(uuid_driver, BleDriver)


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_a_list_of_sources_streams_as_one_kit(tmp_path: Path) -> None:
    radio = FakeRadio()
    address = "C0:FF:EE:00:00:01"
    radio.add(
        address, FakePeripheral(toy.ToyBleEmulator(), toy.readings(100), speed=5.0, characteristics=toy.CHARACTERISTICS)
    )
    registry = toy_registry(radio)
    with PtyServer(toy.readings(100), toy.ToyEncoder(), speed=5.0, link_path=tmp_path / "pelvis") as server:
        kit = registry.build(
            [f"serial:{server.link_path}?protocol=toy&id=p", f"ble:{address}?protocol=toy-ble&site=shank_l&id=s"]
        )
        assert isinstance(kit, KitDriver)
        async with kit:
            server.start()
            stream = kit.stream()
            items = await collect(stream, lambda out: len(samples(out)) >= 200)
        items += await drain(stream)
    assert [s.seq for s in samples(items, "p")] == list(range(100))
    assert [s.seq for s in samples(items, "s")] == list(range(100))
    assert server.received == b""  # no rate option: nothing written


def test_kit_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "kit.toml"
    toml.write_text(
        'on_connect_error = "continue"\n'
        "[sensors]\n"
        'pelvis = "serial:/dev/serial/by-id/usb-imu-1?protocol=toy"\n'
        'shank_l = "ble:C0:FF:EE:00:00:01?protocol=toy-ble&site=shank_l&rate=50"\n'
    )
    kit = toy_registry().build(f"kit:{toml}")
    assert isinstance(kit, KitDriver)
    assert kit.on_connect_error == "continue"
    assert [(s.site, s.transport) for s in kit.sensors] == [(Site.PELVIS, "serial"), (Site.SHANK_L, "ble")]
    overridden = toy_registry().build(f"kit:{toml}?on_error=abort")
    assert isinstance(overridden, KitDriver)
    assert overridden.on_connect_error == "abort"
    document = {
        "sensors": {"thigh_r": "serial:/dev/ttyUSB0?protocol=toy", "thigh_l": "serial:/dev/ttyUSB1?protocol=toy"}
    }
    (tmp_path / "kit.json").write_text(json.dumps(document))
    kit = toy_registry().build(f"kit:{tmp_path / 'kit.json'}")
    assert isinstance(kit, KitDriver)
    assert [s.site for s in kit.sensors] == [Site.THIGH_R, Site.THIGH_L]
    assert kit.on_connect_error == "abort"


def test_registered_scheme_gets_options_checked_too() -> None:
    registry = toy_registry()
    built: list[tuple[str, float | None]] = []

    def build_echo(source: Source, options: SourceOptions, reg: DriverRegistry) -> Driver:
        built.append((source.target, options.positive("speed", 1.0)))
        return reg.build_one(f"serial:/dev/{source.target}?protocol=toy")

    registry.register_scheme("echo", build_echo)
    assert "echo" in registry.schemes
    assert isinstance(registry.build("echo:ttyS0?speed=0.5"), SerialDriver)
    assert built == [("ttyS0", 0.5)]
    with pytest.raises(SourceError, match=r"unknown option 'sped' for echo sources .*; accepted: speed"):
        registry.build("echo:ttyS0?sped=0.5")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_scheme("echo", build_echo)
    registry.register_scheme("echo", build_echo, replace=True)


def test_lazy_scheme_is_imported_on_first_use_or_reported() -> None:
    missing = toy_registry(lazy_schemes={"sim": "sensor_drivers.no_such_module"})
    with pytest.raises(SourceError, match=r"scheme 'sim' \(source 'sim:hemiparetic'\) is not available: its module "):
        missing.build("sim:hemiparetic")
    silent = toy_registry(lazy_schemes={"sim": "json"})
    with pytest.raises(SourceError, match="importing json did not register it"):
        silent.build("sim:hemiparetic")
    assert "sim" in DriverRegistry().schemes  # the default registry knows where sim comes from


def test_module_level_build_driver_uses_the_default_registry() -> None:
    with pytest.raises(SourceError, match="needs protocol=NAME"):
        build_driver("serial:/dev/ttyUSB0")


# -- every error message --------------------------------------------------------------------------------------------

ADDR = "C0:FF:EE:00:00:01"
ERRORS: list[tuple[str, str]] = [
    ("", "empty source; expected SCHEME:TARGET"),
    ("   ", "empty source"),
    ("ttyUSB0", "source 'ttyUSB0' has no scheme; expected SCHEME:TARGET"),
    ("/dev/ttyUSB0", "has no scheme"),
    ("usb:/dev/x", "unknown scheme 'usb' in source 'usb:/dev/x'; accepted: ble, kit, serial, sim"),
    ("serial:?protocol=toy", r"source 'serial:\?protocol=toy' names no port"),
    ("serial:/dev/x?", r"ends with '\?' but gives no options"),
    ("serial:/dev/x?protocol", r"option 'protocol' in source 'serial:/dev/x\?protocol' is not NAME=VALUE"),
    ("serial:/dev/x?protocol=toy&&site=pelvis", "option '' in source .* is not NAME=VALUE"),
    ("serial:/dev/x?1a=2", "option '1a=2' .* is not NAME=VALUE"),
    ("serial:/dev/x?protocol=toy&protocol=toy", "option 'protocol' is given twice"),
    ("serial:/dev/x", "serial source 'serial:/dev/x' needs protocol=NAME; accepted: toy"),
    ("serial:/dev/x?protocol=", "option protocol='' .*: expected a non-empty value"),
    ("serial:/dev/x?protocol=wit", "unknown serial protocol 'wit' in source .*; accepted: toy"),
    (
        "serial:/dev/x?protocol=toy-ble",
        "protocol 'toy-ble' .* is a BLE protocol, not a serial one; serial protocols: toy",
    ),
    ("serial:/dev/x?protocol=toy&site=hip", f"option site='hip' .*: unknown sensor site 'hip'; accepted: {SITES}"),
    ("serial:/dev/x?protocol=toy&baud=fast", "option baud='fast' .*: expected an integer"),
    ("serial:/dev/x?protocol=toy&baud=0", "option baud='0' .*: expected an integer >= 1"),
    ("serial:/dev/x?protocol=toy&rate=-5", "option rate='-5' .*: expected a number > 0"),
    ("serial:/dev/x?protocol=toy&rate=nan", "option rate='nan' .*: expected a finite number"),
    ("serial:/dev/x?protocol=toy&rate=fast", "option rate='fast' .*: expected a number"),
    ("serial:/dev/x?protocol=toy&rate=1000", "option rate=1000 in source .*: toy devices run at 1-255 Hz"),
    ("serial:/dev/x?protocol=toy&id=a%20b", "option id='a b' .*: expected letters, digits"),
    (
        "serial:/dev/x?protocol=toy&bud=9600",
        "unknown option 'bud' for serial sources in .*; accepted: baud, id, protocol, rate, site",
    ),
    ("serial:/dev/x?protocol=toy&a=1&b=2", "unknown options 'a', 'b' for serial sources"),
    ("ble:AA:BB?protocol=toy-ble", "'AA:BB' in source .* is not a Bluetooth address: expected six hex pairs"),
    ("ble:?protocol=toy-ble", "'' in source .* is not a Bluetooth address"),
    (f"ble:{ADDR}", f"BLE source 'ble:{ADDR}' needs protocol=NAME; accepted: toy-ble"),
    (f"ble:{ADDR}?protocol=toy", "protocol 'toy' .* is a serial protocol, not a BLE one; BLE protocols: toy-ble"),
    (f"ble:{ADDR}?protocol=dot", "unknown BLE protocol 'dot' .*; accepted: toy-ble"),
    (f"ble:{ADDR}?protocol=toy-ble&adapter=hci%200", "option adapter='hci 0' .*: expected a name such as hci0"),
    (f"ble:{ADDR}?protocol=toy-ble&rate=300", "option rate=300 in source .*: toy devices run at 1-255 Hz"),
    (
        f"ble:{ADDR}?protocol=toy-ble&baud=9600",
        "unknown option 'baud' for ble sources in .*; accepted: adapter, id, protocol, rate, site",
    ),
    ("kit:", "source 'kit:' names no kit file"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_bad_source_gives_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        toy_registry().build(text)


def test_default_registry_knows_the_real_protocols() -> None:
    registry = DriverRegistry()
    assert sorted(registry.serial_protocols) == ["stridetwin", "witmotion"]
    assert sorted(registry.ble_protocols) == ["dot", "witmotion-ble"]


def test_error_when_no_protocol_is_registered() -> None:
    with pytest.raises(SourceError, match="needs protocol=NAME; accepted: none registered"):
        DriverRegistry(builtin_protocols=False).build("serial:/dev/x")


def test_bad_lists_give_clear_errors() -> None:
    registry = toy_registry()
    with pytest.raises(SourceError, match="empty list of sources"):
        registry.build([])
    with pytest.raises(SourceError, match="do not form a kit: two sensors at site pelvis"):
        registry.build(["serial:/dev/a?protocol=toy", "serial:/dev/b?protocol=toy"])
    with pytest.raises(SourceError, match="unknown serial protocol 'x'"):
        registry.build(["serial:/dev/a?protocol=toy", "serial:/dev/b?protocol=x&site=shank_l"])
    with pytest.raises(SourceError, match="a source must be a string"):
        registry.build([42])  # type: ignore[list-item]


KIT_FILE_ERRORS: list[tuple[str, str, str]] = [
    ("kit.yaml", "sensors: {}", "must end in .toml or .json"),
    ("kit.toml", "[sensors\n", "is not valid TOML"),
    ("kit.json", "{", "is not valid JSON"),
    ("kit.json", "[1, 2]", "expected a table with a 'sensors' table"),
    ("kit.toml", "title = 'x'\n[sensors]\npelvis = 'serial:/dev/a?protocol=toy'\n", r"unknown key\(s\) \['title'\]"),
    ("kit.toml", "on_connect_error = 'retry'\n", "on_connect_error = 'retry'; accepted: abort, continue"),
    ("kit.toml", "[sensors]\n", "expected a non-empty 'sensors' table mapping site"),
    ("kit.toml", "[sensors]\nhip = 'serial:/dev/a?protocol=toy'\n", f"unknown sensor site 'hip'; accepted: {SITES}"),
    ("kit.toml", "[sensors]\npelvis = 3\n", "sensors.pelvis must be a source string"),
    ("kit.toml", "[sensors]\npelvis = 'kit:other.toml'\n", "sensors.pelvis is itself a kit; kits do not nest"),
    (
        "kit.toml",
        "[sensors]\npelvis = 'serial:/dev/a?protocol=toy&site=shank_l'\n",
        "sensors.pelvis = .* names another site \\(shank_l\\); leave site= out",
    ),
    ("kit.toml", "[sensors]\npelvis = 'serial:/dev/a?protocol=wat'\n", "unknown serial protocol 'wat'"),
    ("kit.toml", "[sensors]\npelvis = 'serial:/dev/a?protocol=toy&speed=2'\n", "unknown option 'speed' for serial"),
    (
        "kit.toml",
        "[sensors]\npelvis = 'serial:/dev/a?protocol=toy&id=x'\nshank_l = 'serial:/dev/b?protocol=toy&id=x'\n",
        "sensor id 'x' appears twice",
    ),
]


@pytest.mark.parametrize(("name", "content", "message"), KIT_FILE_ERRORS)
def test_bad_kit_file_gives_a_clear_error(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(SourceError, match=message):
        toy_registry().build(f"kit:{path}")


def test_kit_file_missing_or_bad_policy_option(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=re.escape(f"kit file '{tmp_path / 'none.toml'}'") + ".* cannot be read"):
        toy_registry().build(f"kit:{tmp_path / 'none.toml'}")
    path = tmp_path / "kit.toml"
    path.write_text("[sensors]\npelvis = 'serial:/dev/a?protocol=toy'\n")
    with pytest.raises(SourceError, match=r"option on_error='later' .*: expected one of abort, continue"):
        toy_registry().build(f"kit:{path}?on_error=later")
    with pytest.raises(SourceError, match="unknown option 'policy' for kit sources"):
        toy_registry().build(f"kit:{path}?policy=abort")


def test_protocol_registration_is_checked() -> None:
    registry = toy_registry()
    spec = SerialProtocolSpec(name="toy", description="again", make_decoder=toy.ToyDecoder)
    with pytest.raises(ValueError, match="serial protocol 'toy' is already registered"):
        registry.register_serial_protocol(spec)
    with pytest.raises(ValueError, match="must be lower-case"):
        registry.register_serial_protocol(
            SerialProtocolSpec(name="bad name", description="", make_decoder=toy.ToyDecoder)
        )


def test_link_state_values_are_what_docs_say() -> None:
    # docs/sources.md refers to these names; keep them in step.
    assert [s.value for s in LinkState] == ["connected", "disconnected", "gap"]
