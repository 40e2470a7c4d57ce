"""Run files (TOML) read once at the edge: :func:`read_toml` with ``--set KEY=VALUE`` overrides."""
from mtpjax.io.toml import apply_override, read_toml

__all__ = ["apply_override", "read_toml"]
