"""What goes into a model and what comes out: conversations, structured output, answers, text.

`conversation` (OpenAI-style messages, normalised once at the entry point), `structured`
(JSON and tool calls checked against their schemas; `schema_refs` resolves `$ref`), `answers`
(reading an answer out of a model's text per answer format), `exact_match` (normalising and
comparing answers), `features` (what kind of query this is), `text` (valid Unicode and secrets
scrubbed before anything is sent or stored).
"""
