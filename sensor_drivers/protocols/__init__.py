"""Device protocols: pure functions and small stateful decoders from bytes to :class:`DeviceReading` (and back, for
the virtual patient's emulated devices). No I/O here: transports live in :mod:`sensor_drivers.drivers`."""
