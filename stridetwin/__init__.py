"""StrideTwin's single command line (``stridetwin``). The product code lives in the sibling packages."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stridetwin")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
