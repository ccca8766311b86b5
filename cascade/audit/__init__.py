"""Live audits: how far the served answers are from the strongest tier's, watched while serving (issue 25)."""
