"""easee-tail: tail and inspect the Easee EV-charger cloud's AMQP observation stream."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """`__version__` from the installed package's metadata, read only when asked for
    (importlib.metadata costs a quarter of the start-up)."""
    if name != "__version__":
        raise AttributeError(name)
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("easee-tail")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"
