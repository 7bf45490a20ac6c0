"""The platform: configs to plain values, seeds, tracking, and (later) search."""
