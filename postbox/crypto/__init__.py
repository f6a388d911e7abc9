"""The crypto core: pure, byte-in/byte-out implementations of PROTOCOL.md.

No I/O, no globals, no cached secrets. Every failure is a
:class:`~postbox.crypto.errors.CryptoError` with a precise, cross-language name.
"""
