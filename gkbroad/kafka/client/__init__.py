"""The adapter to kafka-python: the only package of gkbroad that imports `kafka`.

`admin` holds the one-shot requests the command line makes (topics, offsets,
producing records).
"""
