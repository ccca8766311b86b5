"""Online learning from the run store: the cheap-tier predictor, A/B tests, the adaptive-threshold
controller (`controller`) and the contextual threshold bandit (`bandit`)."""
