"""The decision rule, written once: when a tier's answer is accepted, escalated or the run stops.

Live routers, offline replays, the optimizer and the learners' counterfactuals all take it from here.
"""
