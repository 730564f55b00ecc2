"""Test doubles at clear boundaries (an embedder, later a fake Reddit server)."""
