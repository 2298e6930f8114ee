"""The write side: the pure domain, the codec, the ports and one adapter per backend (`sqlite/`, `kafka/`)."""
