"""easee-tail: tail and inspect the Easee EV-charger cloud's AMQP observation stream."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("easee-tail")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
