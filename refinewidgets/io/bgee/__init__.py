"""bgee."""
