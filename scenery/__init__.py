"""Scenery: a self-hosted photo gallery that curates itself."""

__version__ = "0.1.0"
