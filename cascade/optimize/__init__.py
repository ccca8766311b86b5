"""Choosing a cascade from data: which tiers, which verifiers, which thresholds.

`tuner`, `candidates`, `select` and `writer` search logged outputs (`cascade tune --logs`) and
write a runnable config; `live_tune` tunes a config's thresholds on a dataset by replaying its
cached outputs (`cascade tune --dataset`); `scorer_data` builds a scorer's training inputs from
the store or a log.
"""
