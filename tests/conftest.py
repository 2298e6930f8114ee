"""The shared fixtures are plugins in tests/support/, registered here once (tests/README.md says
which fixture is where); no other conftest.py defines or imports fixtures."""

pytest_plugins = [
    "pytester",
    "tests.support.clock",
    "tests.support.codec",
    "tests.support.embedded",
    "tests.support.broker",
    "tests.support.serve",
]
