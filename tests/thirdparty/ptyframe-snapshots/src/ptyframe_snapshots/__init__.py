"""Example third-party ptyframe plugin: object snapshots every N epochs (a callback)."""
