"""`python -m easee_tail` runs the same command as the `easee-tail` script."""

from easee_tail.cli import entry

entry()
