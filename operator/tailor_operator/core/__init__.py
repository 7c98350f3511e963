"""The operator's pure decisions: no kopf, no Kubernetes client, no I/O, no clock.

Everything here takes plain data (parsed objects, raw dicts, `now`) and returns
plain data, so every decision is a table-driven unit test.
"""
