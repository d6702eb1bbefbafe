"""Test-side helpers: copies of the project as real DVC repos, and planted failures."""
