"""The shipped YAML study spaces (installed as package data so `--space NAME` works from anywhere)."""
