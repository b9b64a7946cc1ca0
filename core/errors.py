"""Errors that carry a message meant for the person who runs CityOps (no stack trace needed to act on them)."""


class ConfigError(Exception):
    """A configuration file is missing, unreadable or invalid; the message names the file, key and expectation."""


class FeedError(Exception):
    """A feed file cannot be read as its feed definition says (missing column, unreadable file...)."""
