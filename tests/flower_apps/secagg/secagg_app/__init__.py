"""A SecAgg+ Flower app for tests."""
