"""Transports: drivers that turn devices (serial ports, BLE peripherals, the virtual patient) into sample streams."""
