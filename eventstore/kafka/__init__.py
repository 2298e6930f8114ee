"""The Kafka adapter: topics, records, the fenced event log, the command handler and `serve` on a cluster."""
