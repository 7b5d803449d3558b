"""Errors raised by the device layer. Each message names what was wrong and what is accepted."""


class SensorDriverError(Exception):
    """Base class for errors of the device layer."""


class ProtocolError(SensorDriverError, ValueError):
    """Bytes that do not form a valid frame or packet of the named protocol."""


class SourceError(SensorDriverError, ValueError):
    """A source string (``sim:…``, ``serial:…``, ``ble:…``) that cannot be turned into a driver."""


class DeviceUnavailableError(SensorDriverError, ConnectionError):
    """A device that cannot be reached (port missing, BLE device not found) after the allowed retries."""


class RecordingFormatError(SensorDriverError, ValueError):
    """A file that is not a readable recording of the expected format."""
