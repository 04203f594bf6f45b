"""Shared library for lightweight STFT-domain speech enhancement.

Kept import-free on purpose: the notebook builder inlines each module as its own cell, and
`python -m common` must start fast.
"""
