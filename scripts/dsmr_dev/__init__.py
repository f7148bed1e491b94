"""Development helpers used by scripts/develop and the end-to-end tests."""
