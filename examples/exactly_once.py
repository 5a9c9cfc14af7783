"""Exactly once from one topic to another: one output record per input record.

    python examples/exactly_once.py --bootstrap-servers HOST:PORT --input TOPIC --output TOPIC --group GROUP
        [--member NAME] [--client-library kafka-python|librdkafka]

Consumes TOPIC from the earliest offset and, for every input record, writes one
record to the output topic with the same key and the value
``b"<input partition>:<input offset>"``, in the transaction that commits the
input's offset. SIGTERM (or Ctrl-C) stops it: it drains what it holds,
commits it and exits 0. Kill it at any instant, start it again, and a
``read_committed`` reader of the output sees each input record exactly once.

``--member`` (default ``0``) names this member in its transactional id
(``GROUP-MEMBER``): keep it on restarts, give each member running at the same
time its own. ``--client-library librdkafka`` consumes and writes through
librdkafka (``pip install 'gkbroad[librdkafka]'``) instead of kafka-python.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

import gkbroad  # noqa: E402
from gkbroad.kafka import Producer, add_output  # noqa: E402


class ExactlyOnce(gkbroad.Pipeline):
    def handle_message(self, processor, message, context):
        meta = message.metadata
        return add_output(message, context["output"], f"{meta['partition']}:{meta['offset']}", key=meta["key"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--member", default="0")
    parser.add_argument("--client-library", choices=("kafka-python", "librdkafka"), default="kafka-python")
    args = parser.parse_args()
    if args.client_library == "librdkafka":
        client = {"bootstrap.servers": args.bootstrap_servers}
    else:
        client = {"bootstrap_servers": args.bootstrap_servers, "request_timeout_ms": 4000}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    pipeline = ExactlyOnce(
        name="exactly-once",
        context={"output": args.output},
        producer={
            "module": (
                Producer,
                {
                    "client": client,
                    "client_library": args.client_library,
                    "group_name": args.group,
                    "topics": [{"name": args.input, "offset_reset_policy": "earliest"}],
                    "message_format": "value",
                    "session_timeout_ms": 6000,
                    "heartbeat_interval_ms": 1000,
                    "receive_interval": 100,
                    "exactly_once": {"transactional_id": f"{args.group}-{args.member}"},
                },
            )
        },
        processors={"default": {"concurrency": 20}},
    )
    return 0 if pipeline.run() else 1


if __name__ == "__main__":
    sys.exit(main())
