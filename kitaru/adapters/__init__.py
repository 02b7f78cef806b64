"""Kitaru's framework adapters, by the names its programs import them under.

None is offered in this version; each module explains what to use instead.
"""
