"""The embedded store: log, handler and projections on SQLite files, caught up in the calling process."""
