"""The demo: sample orders through a Kafka pipeline, with progress and a summary.

    python examples/demo.py                       # starts the bundled broker itself
    python examples/demo.py --bootstrap-servers localhost:9092   # your Kafka

It creates a topic, produces sample orders, consumes them with OrdersPipeline
(many processors, blocking handlers, one batcher), prints progress every second
(handled, rate, lag per partition as Kafka stores it), stops cleanly once
everything is committed, and exits 0 only if every order was handled or failed
and the committed offsets equal the end offsets.
"""

from gevent import monkey

monkey.patch_all()  # first, before kafka is imported anywhere

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402
from kafka import KafkaAdminClient, KafkaProducer  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from orders import OrdersPipeline, new_counters, sample_orders  # noqa: E402

from gkbroad.kafka import Producer  # noqa: E402


def produce_sample(servers, topic, partitions, count):
    """Create the topic and produce the orders; returns {partition: end offset}."""
    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="gkbroad-demo")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=servers, linger_ms=10)
    sent = [producer.send(topic, key=key, value=value) for key, value in sample_orders(count)]
    producer.flush()
    producer.close()
    ends = dict.fromkeys(range(partitions), 0)
    for future in sent:
        meta = future.get(timeout=30)
        ends[meta.partition] = max(ends[meta.partition], meta.offset + 1)
    return ends


def committed_offsets(admin, group, topic):
    """What Kafka stores for the group: the next offset to read, per partition."""
    offsets = admin.list_group_offsets(group).get(group, {})
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def run(servers, args):
    topic = f"demo-orders-{uuid.uuid4().hex[:6]}"
    group = f"{topic}-group"
    print(f"== producing {args.orders} sample orders to {topic} ({args.partitions} partitions)")
    ends = produce_sample(servers, topic, args.partitions, args.orders)
    counters = new_counters()
    pipeline = OrdersPipeline(
        name="demo-orders",
        producer={
            "module": (
                Producer,
                {
                    "client": {"bootstrap_servers": servers},
                    "group_name": group,
                    "topics": [{"name": topic, "offset_reset_policy": "earliest"}],
                    "receive_interval": 200,
                    "session_timeout_ms": 6000,
                    "heartbeat_interval_ms": 1000,
                },
            ),
            "concurrency": 2,
        },
        processors={"default": {"concurrency": args.processors, "max_demand": 20}},
        batchers={"default": {"batch_size": 50, "batch_timeout": 200}},
        context=counters,
    )
    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="gkbroad-demo-progress")
    started = time.monotonic()
    pipeline.start()
    print(f"== consuming with {args.processors} processors (handlers block on simulated I/O)")
    committed, last_done, last_time = {}, 0, started
    try:
        while time.monotonic() - started < args.timeout:
            gevent.sleep(1.0)
            committed = committed_offsets(admin, group, topic)
            done = counters["handled"] + counters["failed"]
            now = time.monotonic()
            rate = (done - last_done) / (now - last_time)
            last_done, last_time = done, now
            if not done:
                print("  waiting for the group to assign partitions...", flush=True)
                continue
            lag = " ".join(f"p{p}:{ends[p] - committed.get(p, 0)}" for p in sorted(ends))
            print(
                f"  handled {counters['handled']:>6}  failed {counters['failed']:>4}  {rate:>7.0f} rec/s  lag {lag}",
                flush=True,
            )
            if done >= args.orders and all(committed.get(p, 0) == ends[p] for p in ends):
                break
    finally:
        clean = pipeline.stop()
        committed = committed_offsets(admin, group, topic)
        admin.close()
    elapsed = time.monotonic() - started
    ok = (
        clean
        and counters["handled"] + counters["failed"] == args.orders
        and all(committed.get(p, 0) == ends[p] for p in ends)
    )
    print("== summary")
    print(f"  orders produced      {args.orders}")
    print(f"  handled              {counters['handled']} ({counters['batches']} batches written)")
    print(f"  failed               {counters['failed']} (invalid amount, sent to handle_failed)")
    print(f"  time                 {elapsed:.1f}s ({args.orders / elapsed:.0f} orders/s)")
    print(f"  committed = end      {committed == ends}  {committed}")
    print(f"  clean stop           {clean}")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", help="use this Kafka instead of starting the bundled broker")
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--processors", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.bootstrap_servers:
        return run(args.bootstrap_servers, args)
    from gkbroad.broker import LocalBroker

    with LocalBroker() as broker:
        print(f"== started the bundled broker on {broker.bootstrap_servers}")
        return run(broker.bootstrap_servers, args)


if __name__ == "__main__":
    sys.exit(main())
