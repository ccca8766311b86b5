"""Offline analysis of logged outputs: EM, replayed policies, cost–EM curves, metrics, statistics, reports."""
