"""Data formats: gold-answer datasets and logs of per-model outputs, read through one format table."""
