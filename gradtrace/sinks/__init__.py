"""Where records go: TensorBoard event files, the console, findings.jsonl.

Sinks compute nothing: they format records that the fit loop already made.
"""
