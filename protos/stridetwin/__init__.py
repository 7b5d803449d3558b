"""Proto package ``stridetwin`` (generated code lives in versioned subpackages)."""
