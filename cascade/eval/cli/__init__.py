"""The evaluation command lines: `cascade eval`, `cascade tune`, `cascade replay`."""
