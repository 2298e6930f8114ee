"""The bridge: Watcher's own notifications become commands about plans that mirror it (docs/beside-watcher.md)."""
