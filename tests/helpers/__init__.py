"""What the tests share, one module per job; tests import them by module path
(`from tests.helpers.support import wait_until`).

support          waiting for a condition, a free port, helper modules as child processes
engine_support   a recording pipeline and test producers for the engine's unit tests
fake_kafka       the in-memory Kafka client the unit tests run the consumer group over
kafka_helpers    topics, produce and offsets on the real broker, through kafka-python directly
kafka_options    the one builder of gkbroad.kafka.Producer options for the integration tests
pipeline_support a Kafka pipeline that records the offsets it saw
group_support    a ConsumerGroup built from options, and a consumer that drives it
web_support      HTTP reads and example processes for the WSGI and gunicorn tests
fault_check      the reader and checker of the fault tests' journals

Run as processes by the integration tests (`python -m tests.helpers.<name>`;
each applies gevent's monkey patching before anything else, so this package
must import nothing):
fault_worker, group_member, ordering_member
"""
