"""A python-watcher 17.0.0 peer for tests: Watcher itself in a subprocess, against a Kafka broker."""
