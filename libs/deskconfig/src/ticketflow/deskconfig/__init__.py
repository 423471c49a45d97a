"""Validated per-desk configuration (TOML decoded into msgspec Structs)."""
