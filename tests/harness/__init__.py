"""Real parts for the tests and the benchmarks: a private RabbitMQ over TLS, certificates."""
