"""A pipeline in its own process for the kill-and-restart tests of test_ordering.py.

    python -m tests.helpers.ordering_member BOOTSTRAP TOPIC GROUP ORDERING CLIENT_LIBRARY OUTFILE

Handles records with a random short sleep, appending "handled PARTITION OFFSET"
to OUTFILE when a handler finishes (before the record is acknowledged), until
SIGTERM. Its session is RESTART_SESSION_TIMEOUT_MS: each test starts a second member right after
SIGKILLing the first.
"""

from gevent import monkey

monkey.patch_all()

import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gkbroad  # noqa: E402
from gkbroad.kafka import Producer  # noqa: E402
from tests.helpers.kafka_options import RESTART_SESSION_TIMEOUT_MS, producer_options  # noqa: E402


class OrderingPipeline(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        time.sleep(random.random() * 0.003)
        context.write(f"handled {message.data.partition} {message.data.offset}\n")
        return message


def main(bootstrap, topic, group, ordering, client_library, outfile):
    with open(outfile, "a", buffering=1) as out:
        pipeline = OrderingPipeline(
            name="ordering-member",
            producer={
                "module": (
                    Producer,
                    producer_options(
                        bootstrap,
                        group,
                        [topic],
                        ordering=ordering,
                        client_library=client_library,
                        session_timeout_ms=RESTART_SESSION_TIMEOUT_MS,
                    ),
                )
            },
            processors={"default": {"concurrency": 20, "max_demand": 10}},
            context=out,
        )
        sys.exit(0 if pipeline.run() else 1)


if __name__ == "__main__":
    main(*sys.argv[1:7])
