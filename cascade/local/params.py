"""What the in-process provider reads beyond OpenAI's parameters, and the key it answers under.

The completer sends these to `local/` models only (no other provider knows them): an answer-complete
pattern to stop at in process, and an early-exit rule for answer probing. The provider puts what a
generation adds (why it stopped, its probes) in the response's `_hidden_params` under `HIDDEN`.
"""

STOP_PATTERN = "cascade_stop_pattern"
EARLY_EXIT = "cascade_early_exit"
HIDDEN = "cascade"
