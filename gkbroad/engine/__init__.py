"""The engine: stages, callbacks, acknowledgement, flow control, executors, retries.

It knows nothing of Kafka, configuration files, the command line or WSGI
(tests/unit/test_code_rules.py keeps it so): a producer hands it messages, and
the message's acknowledger is the only way back out.
"""
