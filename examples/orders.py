"""An example pipeline: orders from Kafka, handled with blocking (simulated) I/O.

handle_message validates an order and "calls a payment service" (a short
gevent-friendly sleep standing in for an HTTP request), handle_batch "writes" a
batch of orders to a database in one go, and handle_failed counts the orders
that were rejected. examples/orders.toml runs it:

    gkbroad run examples/orders.toml        # from the repository's root

./scripts/demo.sh does that against the bundled broker, with sample orders
produced by `gkbroad produce --count N --keyed`.
"""

import json
import logging
import random
from collections import Counter

import gevent

import gkbroad

logger = logging.getLogger(__name__)


class OrdersPipeline(gkbroad.Pipeline):
    """Counts what it did and logs the tally when it stops."""

    def __init__(self, **options):
        super().__init__(**options)
        self.counts = Counter(handled=0, failed=0, batches=0)
        self.hooks.add(self)  # for after_pipeline_stop below

    def handle_message(self, processor, message, context):
        order = json.loads(message.data.value)
        if order["amount"] <= 0:
            return message.failed(f"order {order['id']}: amount must be positive, got {order['amount']}")
        gevent.sleep(random.uniform(0.001, 0.004))  # the payment service answers
        self.counts["handled"] += 1
        return message.put_data(order)

    def handle_batch(self, batcher, messages, batch_info, context):
        gevent.sleep(0.005)  # one bulk INSERT for the whole batch
        self.counts["batches"] += 1
        return messages

    def handle_failed(self, messages, context):
        self.counts["failed"] += len(messages)
        return messages

    def after_pipeline_stop(self, pipeline, clean):
        """A hook (gkbroad/observability/hooks.py): runs once the stop is over, however it was asked for."""
        counts = self.counts
        logger.info(
            "orders tally: handled=%d failed=%d batches=%d", counts["handled"], counts["failed"], counts["batches"]
        )
