"""Everything that consumes the log: the read model, the notification translator, replay, audit."""
