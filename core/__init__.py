"""Shared foundations: settings, canonical schema, the clock, the warehouse files, the message catalogue."""
