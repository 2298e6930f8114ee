"""The store on a Kafka cluster: the read model, the translator and the audit trail fed from topics, and `serve`'s parts."""
