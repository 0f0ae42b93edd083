"""A numbers-only Flower app for tests."""
