"""The embedded adapter: the event log as one SQLite file."""
