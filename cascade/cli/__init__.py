"""Every `cascade` command, one module each; `main` builds the parser and dispatches.

Building the parser imports nothing heavy (`cascade --help` stays fast): each command imports
its implementation when it runs.
"""
