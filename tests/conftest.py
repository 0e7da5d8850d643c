"""Shared test configuration: the project's tests use its own testing kit's fixtures."""

pytest_plugins = ["sdei_state.testing.fixtures"]
