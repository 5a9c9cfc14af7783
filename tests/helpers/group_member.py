"""One group member in its own process, for the multi-process tests.

    python -m tests.helpers.group_member BOOTSTRAP TOPIC GROUP OUTFILE ASSIGNOR CLIENT_LIBRARY [STOP_AFTER]

Runs a pipeline until SIGTERM (or, with STOP_AFTER, until its handler has seen
that many records and calls self.stop()), appending to OUTFILE one line per
event: "start P", "stop P REASON" (partition assigned / released),
"handled P OFFSET", and "exit clean|unclean" when run() returned.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

import gkbroad  # noqa: E402
from gkbroad.kafka import ConsumerGroup, Producer  # noqa: E402
from tests.helpers.kafka_options import client_settings, producer_options  # noqa: E402


def main(bootstrap, topic, group, outfile, assignor, client_library, stop_after=None):
    out = open(outfile, "a", buffering=1)  # noqa: SIM115 - open for the process lifetime

    class ReportingGroup(ConsumerGroup):
        client = client_settings(bootstrap, client_library)

        def handle_consumer_start(self, topic, partition, group_name):
            out.write(f"start {partition}\n")

        def handle_consumer_stop(self, topic, partition, group_name, reason):
            out.write(f"stop {partition} {reason}\n")

    class Writer(gkbroad.Pipeline):
        handled = 0

        def handle_message(self, processor, message, context):
            out.write(f"handled {message.data.partition} {message.data.offset}\n")
            self.handled += 1
            if self.handled == stop_after:
                self.stop()
            return message

    pipeline = Writer(
        name="member",
        producer={
            "module": (
                Producer,
                producer_options(
                    bootstrap,
                    group,
                    [topic],
                    consumer_group=ReportingGroup,
                    drain_timeout=10000,
                    partition_assignment_strategy=assignor,
                    client_library=client_library,
                ),
            )
        },
        processors={"default": {"concurrency": 8}},
    )
    clean = pipeline.run()
    out.write(f"exit {'clean' if clean else 'unclean'}\n")
    out.close()
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:7], *[int(n) for n in sys.argv[7:8]]))
