"""Completers: the one I/O boundary between the cascade and model providers.

`fake` (the shipped test double), `litellm_completer` (every provider litellm reaches, and the
in-process `local/` models), `retrying` (tenacity around any completer), `plugins` (their config
types), `litellm_setup` (the one place litellm is configured) and `routable` (refusing model
strings no provider serves). Nothing is imported here: `import cascade` loads this package first
(for `litellm_setup`) and must stay cheap.
"""
