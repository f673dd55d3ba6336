"""Defaults the options show at start-up, kept in a light module (no pika, no requests) so
that --help and shell completion start fast."""

DEFAULT_API_URL = "https://api.easee.com"
HEARTBEAT = 30  # seconds: the AMQP heartbeat easee-tail asks for
DEFAULT_PREFETCH = 1000  # unacknowledged messages the broker may send ahead
STALE_AFTER = 300.0  # seconds a Timestamp may lie before its ArrivalTime before it is stale
