"""Transform: column mapping, phones, validation and dedupe, as pure functions on frames.

This package never imports :mod:`contactpipe.load` or :mod:`contactpipe.cli`.
"""
