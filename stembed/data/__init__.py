"""Data: loading pair data from files or the hub, and builders that make pairs from raw data."""
