"""What the tests share: fixtures as pytest plugins (registered once, in tests/conftest.py) and helpers tests import."""
