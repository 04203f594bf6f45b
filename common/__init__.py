"""Shared library for lightweight STFT-domain speech enhancement.

Kept import-free on purpose: a notebook ships only the modules it imports (this package file
included), and `python -m common` must start fast.
"""
