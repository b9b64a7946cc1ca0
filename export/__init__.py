"""Scheduled snapshot exports: pages of the running dashboard as PNG and PDF, on a timetable (config/exports.yaml)."""
