"""The pure domain: which events a command produces given a plan's state. No I/O here."""
