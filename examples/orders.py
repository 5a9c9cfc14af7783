"""An example pipeline: orders from Kafka, handled with blocking (simulated) I/O.

handle_message validates an order and "calls a payment service" (a short
gevent-friendly sleep standing in for an HTTP request), handle_batch "writes" a
batch of orders to a database in one go, and handle_failed collects the orders
that were rejected. Run it through ./scripts/demo.sh, or point it at your own
Kafka with examples/demo.py --bootstrap-servers HOST:PORT.
"""

import json
import random
from collections import Counter

import gevent

import gkbroad


class OrdersPipeline(gkbroad.Pipeline):
    """Counts what it did in `context` (a Counter) so the demo can report it."""

    def handle_message(self, processor, message, context):
        order = json.loads(message.data.value)
        if order["amount"] <= 0:
            return message.failed(f"order {order['id']}: amount must be positive, got {order['amount']}")
        gevent.sleep(random.uniform(0.001, 0.004))  # the payment service answers
        context["handled"] += 1
        return message.put_data(order)

    def handle_batch(self, batcher, messages, batch_info, context):
        gevent.sleep(0.005)  # one bulk INSERT for the whole batch
        context["batches"] += 1
        context["batched"] += len(messages)
        return messages

    def handle_failed(self, messages, context):
        context["failed"] += len(messages)
        return messages


def sample_orders(count, seed=7):
    """`count` JSON orders, about 1% of them invalid (amount 0), keyed by customer."""
    rng = random.Random(seed)
    for order_id in range(count):
        amount = 0 if rng.random() < 0.01 else round(rng.uniform(1, 500), 2)
        customer = f"customer-{rng.randrange(200)}"
        yield customer.encode(), json.dumps({"id": order_id, "customer": customer, "amount": amount}).encode()


def new_counters():
    return Counter(handled=0, failed=0, batches=0, batched=0)
