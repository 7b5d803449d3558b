"""Build a driver from a source string: ``serial:…``, ``ble:…``, ``sim:…``, ``kit:…`` (grammar in ``docs/sources.md``).

::

    SOURCE  = SCHEME ":" TARGET [ "?" OPTION *( "&" OPTION ) ]
    OPTION  = NAME "=" VALUE            (percent-encoding allowed in VALUE)

The registry is extensible twice over:

- by scheme: ``register_scheme("sim", factory)``; the virtual patient registers ``sim`` when
  ``sensor_drivers.sim`` is imported, and the registry imports that module the first time a ``sim:`` source is built;
- by protocol: ``register_serial_protocol(SerialProtocolSpec(…))`` and ``register_ble_protocol(BleProtocolSpec(…))``
  tell the ``serial`` and ``ble`` schemes how to build a protocol's decoder, configuration writes and profile.

Every error is a :class:`~sensor_drivers.errors.SourceError` naming the bad part of the source and what is accepted.
A :class:`DriverRegistry` holds the tables; the module-level functions use the process-wide default one, tests can
make their own.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sensor_drivers.drivers.base import Driver
from sensor_drivers.drivers.ble import BleClientFactory, BleDriver, BleOptions
from sensor_drivers.drivers.builtin_protocols import builtin_ble_protocols, builtin_serial_protocols
from sensor_drivers.drivers.kit import ON_CONNECT_ERROR_CHOICES, KitDriver
from sensor_drivers.drivers.protocol_specs import BleProtocolSpec, SerialProtocolSpec
from sensor_drivers.drivers.serial import SerialDriver, SerialOptions
from sensor_drivers.errors import SourceError
from sensor_drivers.sites import Site

# -- Parsing ----------------------------------------------------------------------------------------------------------

GRAMMAR = "SCHEME:TARGET[?NAME=VALUE[&NAME=VALUE…]]"

_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]*$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# A Bluetooth device address (six hex pairs) or a CoreBluetooth UUID (macOS hides addresses).
_BLE_ADDRESS_RE = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$")
_BLE_UUID_RE = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


@dataclass(frozen=True)
class Source:
    """A parsed source string."""

    text: str
    scheme: str
    target: str
    options: Mapping[str, str]


def parse_source(text: str) -> Source:
    """Split a source string into scheme, target and options (no knowledge of schemes yet)."""
    if not isinstance(text, str):
        raise SourceError(f"a source must be a string like {GRAMMAR}, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise SourceError(f"empty source; expected {GRAMMAR}")
    scheme, colon, rest = text.partition(":")
    scheme = scheme.strip().lower()
    if not colon or not _SCHEME_RE.match(scheme):
        raise SourceError(f"source {text!r} has no scheme; expected {GRAMMAR}, e.g. serial:/dev/ttyUSB0?protocol=…")
    target, question, query = rest.partition("?")
    options: dict[str, str] = {}
    if question:
        if not query:
            raise SourceError(f"source {text!r} ends with '?' but gives no options; expected NAME=VALUE after '?'")
        for part in query.split("&"):
            name, equals, value = part.partition("=")
            name = name.strip().lower()
            if not equals or not _NAME_RE.match(name):
                raise SourceError(f"option {part!r} in source {text!r} is not NAME=VALUE")
            if name in options:
                raise SourceError(f"option {name!r} is given twice in source {text!r}")
            options[name] = unquote(value.strip())
    return Source(text=text, scheme=scheme, target=unquote(target.strip()), options=options)


class SourceOptions:
    """Typed access to a source's options; remembers which names were asked for, to report unknown ones."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._options = dict(source.options)
        self._asked: set[str] = set()

    def _raw(self, name: str) -> str | None:
        self._asked.add(name)
        return self._options.get(name)

    def _bad(self, name: str, value: str, expected: str) -> SourceError:
        return SourceError(f"option {name}={value!r} in source {self.source.text!r}: expected {expected}")

    def has(self, name: str) -> bool:
        """Whether the option is given."""
        self._asked.add(name)
        return name in self._options

    def text(self, name: str, default: str | None = None) -> str | None:
        """A string option."""
        value = self._raw(name)
        if value is None:
            return default
        if not value:
            raise self._bad(name, value, "a non-empty value")
        return value

    def number(self, name: str, default: float | None = None, *, minimum: float | None = None) -> float | None:
        """A finite number, optionally at least ``minimum`` (``minimum`` itself is allowed)."""
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise self._bad(name, value, "a number") from None
        if not math.isfinite(number) or (minimum is not None and number < minimum):
            raise self._bad(name, value, f"a number >= {minimum:g}" if minimum is not None else "a finite number")
        return number

    def positive(self, name: str, default: float | None = None) -> float | None:
        """A finite number > 0."""
        number = self.number(name, default)
        if number is not None and not number > 0:
            raise self._bad(name, self._options[name], "a number > 0")
        return number

    def integer(self, name: str, default: int | None = None, *, minimum: int | None = None) -> int | None:
        """An integer option."""
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise self._bad(name, value, "an integer") from None
        if minimum is not None and number < minimum:
            raise self._bad(name, value, f"an integer >= {minimum}")
        return number

    def choice(self, name: str, choices: Iterable[str], default: str | None = None) -> str | None:
        """One of ``choices`` (case-insensitive)."""
        choices = list(choices)
        value = self._raw(name)
        if value is None:
            return default
        if value.lower() not in choices:
            raise self._bad(name, value, f"one of {', '.join(choices)}")
        return value.lower()

    def site(self, default: Site | None = None) -> Site:
        """The ``site`` option (a body site); ``default`` when absent, an error when absent without a default."""
        value = self._raw("site")
        if value is None:
            if default is None:
                raise SourceError(
                    f"source {self.source.text!r} needs site=NAME; accepted: {', '.join(s.value for s in Site)}"
                )
            return default
        try:
            return Site.parse(value)
        except ValueError as exc:
            raise SourceError(f"option site={value!r} in source {self.source.text!r}: {exc}") from None

    def finish(self) -> None:
        """Raise SourceError if the source gave an option nobody asked for."""
        unknown = sorted(set(self._options) - self._asked)
        if unknown:
            names = ", ".join(repr(u) for u in unknown)
            plural = "s" if len(unknown) > 1 else ""
            raise SourceError(
                f"unknown option{plural} {names} for {self.source.scheme} sources in {self.source.text!r}; "
                f"accepted: {', '.join(sorted(self._asked))}"
            )


#: A scheme's builder: the parsed source, its options, and the registry (for protocol lookups and nested sources).
SchemeFactory = Callable[[Source, SourceOptions, "DriverRegistry"], Driver]


# -- The registry -----------------------------------------------------------------------------------------------------


class DriverRegistry:
    """Schemes and protocols known to :meth:`build`.

    Parameters
    ----------
    client_factory
        BLE client factory for ``ble:`` sources (default: real bleak); the virtual patient or tests pass a
        :class:`~sensor_drivers.drivers.fake_gatt.FakeRadio`'s.
    lazy_schemes
        Scheme → module to import the first time the scheme is used (the module registers it).
    builtin_schemes
        Register ``serial``, ``ble`` and ``kit``.
    builtin_protocols
        Register the real device protocols (WitMotion serial and BLE, Movella DOT, the StrideTwin frame).
    """

    def __init__(
        self,
        *,
        client_factory: BleClientFactory | None = None,
        lazy_schemes: Mapping[str, str] | None = None,
        builtin_schemes: bool = True,
        builtin_protocols: bool = True,
    ) -> None:
        self.client_factory = client_factory
        self._schemes: dict[str, SchemeFactory] = {}
        self._lazy: dict[str, str] = dict(lazy_schemes if lazy_schemes is not None else {"sim": "sensor_drivers.sim"})
        self.serial_protocols: dict[str, SerialProtocolSpec] = {}
        self.ble_protocols: dict[str, BleProtocolSpec] = {}
        if builtin_schemes:
            self.register_scheme("serial", build_serial)
            self.register_scheme("ble", build_ble)
            self.register_scheme("kit", build_kit_file)
        if builtin_protocols:
            for serial_spec in builtin_serial_protocols():
                self.register_serial_protocol(serial_spec)
            for ble_spec in builtin_ble_protocols():
                self.register_ble_protocol(ble_spec)

    # -- registration -------------------------------------------------------------------------------------------

    def register_scheme(self, scheme: str, factory: SchemeFactory, *, replace: bool = False) -> None:
        """Make ``scheme:…`` sources buildable by ``factory(source, options, registry)``."""
        scheme = scheme.lower()
        if not _SCHEME_RE.match(scheme):
            raise ValueError(f"scheme {scheme!r} must be lower-case letters, digits, '+', '-' or '.'")
        if scheme in self._schemes and not replace:
            raise ValueError(f"scheme {scheme!r} is already registered (pass replace=True to override)")
        self._schemes[scheme] = factory
        self._lazy.pop(scheme, None)

    def register_serial_protocol(self, spec: SerialProtocolSpec, *, replace: bool = False) -> None:
        """Make ``serial:…?protocol=<spec.name>`` available."""
        _register(self.serial_protocols, spec.name, spec, replace, "serial")

    def register_ble_protocol(self, spec: BleProtocolSpec, *, replace: bool = False) -> None:
        """Make ``ble:…?protocol=<spec.name>`` available."""
        _register(self.ble_protocols, spec.name, spec, replace, "BLE")

    @property
    def schemes(self) -> list[str]:
        """Every scheme name, registered or importable on first use."""
        return sorted({*self._schemes, *self._lazy})

    # -- look-ups -----------------------------------------------------------------------------------------------

    def scheme_factory(self, source: Source) -> SchemeFactory:
        """The factory for a source's scheme (importing its module on first use), or a SourceError."""
        factory = self._schemes.get(source.scheme)
        if factory is None and source.scheme in self._lazy:
            module = self._lazy[source.scheme]
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise SourceError(
                    f"scheme {source.scheme!r} (source {source.text!r}) is not available: its module {module} "
                    f"cannot be imported ({exc})"
                ) from exc
            factory = self._schemes.get(source.scheme)
            if factory is None:
                raise SourceError(
                    f"scheme {source.scheme!r} (source {source.text!r}) is not available: importing {module} "
                    "did not register it"
                )
        if factory is None:
            raise SourceError(
                f"unknown scheme {source.scheme!r} in source {source.text!r}; accepted: {', '.join(self.schemes)}"
            )
        return factory

    def serial_protocol(self, name: str | None, source: Source) -> SerialProtocolSpec:
        """The serial protocol named in a source, or a SourceError listing the accepted names."""
        return _lookup(self.serial_protocols, self.ble_protocols, name, source, "serial", "BLE")

    def ble_protocol(self, name: str | None, source: Source) -> BleProtocolSpec:
        """The BLE protocol named in a source, or a SourceError listing the accepted names."""
        return _lookup(self.ble_protocols, self.serial_protocols, name, source, "BLE", "serial")

    # -- building -----------------------------------------------------------------------------------------------

    def build(self, source: str | Sequence[str], **kwargs: Any) -> Driver:
        """A driver for one source string, or a :class:`KitDriver` for a list of them (even a list of one).

        ``kwargs`` are passed to the kit for a list (``on_connect_error``); a single source accepts none.
        """
        if isinstance(source, str):
            if kwargs:
                raise TypeError(f"unexpected keyword arguments for a single source: {sorted(kwargs)}")
            return self.build_one(source)
        sources = list(source)
        if not sources:
            raise SourceError(f"empty list of sources; give at least one {GRAMMAR}")
        drivers = [self.build_one(s) for s in sources]
        try:
            return KitDriver(drivers, labels=[str(s) for s in sources], **kwargs)
        except ValueError as exc:
            raise SourceError(f"sources {sources!r} do not form a kit: {exc}") from exc

    def build_one(self, text: str) -> Driver:
        """A driver for one source string."""
        source = parse_source(text)
        factory = self.scheme_factory(source)
        options = SourceOptions(source)
        driver = factory(source, options, self)
        options.finish()
        return driver


def _register(table: dict[str, Any], name: str, spec: Any, replace: bool, kind: str) -> None:
    key = name.strip().lower()
    if not _NAME_RE.match(key.replace("-", "_")):
        raise ValueError(f"{kind} protocol name {name!r} must be lower-case letters, digits, '-' or '_'")
    if key in table and not replace:
        raise ValueError(f"{kind} protocol {key!r} is already registered (pass replace=True to override)")
    table[key] = spec


def _lookup(
    table: Mapping[str, Any], other: Mapping[str, Any], name: str | None, source: Source, kind: str, other_kind: str
) -> Any:
    accepted = ", ".join(sorted(table)) or "none registered"
    if name is None:
        raise SourceError(f"{kind} source {source.text!r} needs protocol=NAME; accepted: {accepted}")
    key = name.strip().lower()
    if key in table:
        return table[key]
    if key in other:
        raise SourceError(
            f"protocol {name!r} in source {source.text!r} is a {other_kind} protocol, not a {kind} one; "
            f"{kind} protocols: {accepted}"
        )
    raise SourceError(f"unknown {kind} protocol {name!r} in source {source.text!r}; accepted: {accepted}")


def _sensor_id(options: SourceOptions) -> str | None:
    value = options.text("id")
    if value is not None and not re.match(r"^[A-Za-z0-9_.:-]+$", value):
        raise SourceError(
            f"option id={value!r} in source {options.source.text!r}: expected letters, digits, '_', '.', ':' or '-'"
        )
    return value


def _rate_checked(make: Callable[[], Any], rate_hz: float | None, source: Source) -> Any:
    try:
        return make()
    except ValueError as exc:
        what = f"option rate={rate_hz:g}" if rate_hz is not None else "the protocol's configuration"
        raise SourceError(f"{what} in source {source.text!r}: {exc}") from exc


# -- Built-in schemes -------------------------------------------------------------------------------------------------


def build_serial(source: Source, options: SourceOptions, registry: DriverRegistry) -> SerialDriver:
    """``serial:PATH?protocol=NAME[&site=SITE][&baud=N][&rate=HZ][&id=ID]``."""
    if not source.target:
        raise SourceError(f"source {source.text!r} names no port; expected e.g. serial:/dev/ttyUSB0?protocol=…")
    spec = registry.serial_protocol(options.text("protocol"), source)
    site = options.site(Site.PELVIS)
    baud = options.integer("baud", spec.default_baud, minimum=1)
    rate_hz = options.positive("rate")
    sensor_id = _sensor_id(options)
    start_writes = _rate_checked(lambda: spec.start_writes(rate_hz), rate_hz, source)
    assert baud is not None
    return SerialDriver(
        source.target,
        spec.make_decoder,
        site=site,
        sensor_id=sensor_id,
        protocol=spec.name,
        start_writes=start_writes,
        seq_modulus=spec.seq_modulus,
        nominal_rate_hz=rate_hz or spec.default_rate_hz,
        options=SerialOptions(baud_rate=baud),
    )


def build_ble(source: Source, options: SourceOptions, registry: DriverRegistry) -> BleDriver:
    """``ble:ADDRESS?protocol=NAME[&site=SITE][&rate=HZ][&adapter=hciN][&id=ID]``."""
    address = source.target
    if not (_BLE_ADDRESS_RE.match(address) or _BLE_UUID_RE.match(address)):
        raise SourceError(
            f"{address!r} in source {source.text!r} is not a Bluetooth address: expected six hex pairs "
            "AA:BB:CC:DD:EE:FF (or a device UUID on macOS)"
        )
    spec = registry.ble_protocol(options.text("protocol"), source)
    site = options.site(Site.PELVIS)
    rate_hz = options.positive("rate")
    adapter = options.text("adapter")
    if adapter is not None and not re.match(r"^[A-Za-z0-9_-]+$", adapter):
        raise SourceError(f"option adapter={adapter!r} in source {source.text!r}: expected a name such as hci0")
    sensor_id = _sensor_id(options)
    profile = _rate_checked(lambda: spec.make_profile(rate_hz), rate_hz, source)
    return BleDriver(
        address.upper() if _BLE_ADDRESS_RE.match(address) else address,
        profile,
        site=site,
        sensor_id=sensor_id,
        seq_modulus=spec.seq_modulus,
        nominal_rate_hz=rate_hz or spec.default_rate_hz,
        options=BleOptions(adapter=adapter),
        client_factory=registry.client_factory,
    )


def build_kit_file(source: Source, options: SourceOptions, registry: DriverRegistry) -> KitDriver:
    """``kit:PATH[?on_error=abort|continue]``: a TOML or JSON file mapping sites to sources (``docs/sources.md``)."""
    path = Path(os.path.expanduser(source.target))
    if not source.target:
        raise SourceError(f"source {source.text!r} names no kit file; expected kit:PATH.toml or kit:PATH.json")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"kit file {str(path)!r} (source {source.text!r}) cannot be read: {exc}") from exc
    try:
        if path.suffix.lower() == ".json":
            document = json.loads(raw)
        elif path.suffix.lower() == ".toml":
            document = tomllib.loads(raw.decode("utf-8"))
        else:
            raise SourceError(f"kit file {str(path)!r} must end in .toml or .json")
    except (ValueError, UnicodeDecodeError) as exc:  # tomllib.TOMLDecodeError and JSONDecodeError are ValueErrors
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"kit file {str(path)!r} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    policy_default = "abort"
    if isinstance(document, dict) and "on_connect_error" in document:
        policy_default = str(document["on_connect_error"]).lower()
        if policy_default not in ON_CONNECT_ERROR_CHOICES:
            raise SourceError(
                f"kit file {str(path)!r}: on_connect_error = {document['on_connect_error']!r}; "
                f"accepted: {', '.join(ON_CONNECT_ERROR_CHOICES)}"
            )
    policy = options.choice("on_error", ON_CONNECT_ERROR_CHOICES, policy_default)
    if not isinstance(document, dict):
        raise SourceError(f"kit file {str(path)!r}: expected a table with a 'sensors' table of site = source")
    extra = sorted(set(document) - {"sensors", "on_connect_error"})
    if extra:
        raise SourceError(f"kit file {str(path)!r}: unknown key(s) {extra}; accepted: on_connect_error, sensors")
    sensors = document.get("sensors")
    if not isinstance(sensors, dict) or not sensors:
        raise SourceError(
            f"kit file {str(path)!r}: expected a non-empty 'sensors' table mapping site → source, e.g. "
            'pelvis = "serial:/dev/ttyUSB0?protocol=witmotion"'
        )
    drivers: list[Driver] = []
    labels: list[str] = []
    for site_name, sub_text in sensors.items():
        try:
            site = Site.parse(site_name)
        except ValueError as exc:
            raise SourceError(f"kit file {str(path)!r}: {exc}") from None
        if not isinstance(sub_text, str):
            raise SourceError(f"kit file {str(path)!r}: sensors.{site_name} must be a source string")
        sub = parse_source(sub_text)
        if sub.scheme == "kit":
            raise SourceError(f"kit file {str(path)!r}: sensors.{site_name} is itself a kit; kits do not nest")
        if "site" in sub.options and sub.options["site"].strip().lower() != site.value:
            raise SourceError(
                f"kit file {str(path)!r}: sensors.{site_name} = {sub_text!r} names another site "
                f"({sub.options['site']}); leave site= out, the key gives it"
            )
        sub_options = dict(sub.options)
        sub_options["site"] = site.value
        sub = Source(text=sub_text, scheme=sub.scheme, target=sub.target, options=sub_options)
        factory = registry.scheme_factory(sub)
        sub_reader = SourceOptions(sub)
        drivers.append(factory(sub, sub_reader, registry))
        sub_reader.finish()
        labels.append(sub_text)
    try:
        return KitDriver(drivers, on_connect_error=policy, labels=labels)  # type: ignore[arg-type]
    except ValueError as exc:
        raise SourceError(f"kit file {str(path)!r}: {exc}") from exc


# -- The process-wide registry ----------------------------------------------------------------------------------------

#: The registry the module-level functions use, with the real device protocols registered.
default_registry = DriverRegistry()


def register_scheme(scheme: str, factory: SchemeFactory, *, replace: bool = False) -> None:
    """Register a scheme with the default registry (see :meth:`DriverRegistry.register_scheme`)."""
    default_registry.register_scheme(scheme, factory, replace=replace)


def register_serial_protocol(spec: SerialProtocolSpec, *, replace: bool = False) -> None:
    """Register a serial protocol with the default registry."""
    default_registry.register_serial_protocol(spec, replace=replace)


def register_ble_protocol(spec: BleProtocolSpec, *, replace: bool = False) -> None:
    """Register a BLE protocol with the default registry."""
    default_registry.register_ble_protocol(spec, replace=replace)


def build_driver(source: str | Sequence[str], **kwargs: Any) -> Driver:
    """A driver for a source string (or a kit for a list of them), from the default registry."""
    return default_registry.build(source, **kwargs)
