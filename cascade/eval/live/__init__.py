"""Live evaluation: a cascade and each tier alone on the same items, through one output cache."""
