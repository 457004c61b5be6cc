"""refinebio."""
