"""The same handlers written with quixstreams and faust-streaming, as their docs show.

    .bench/venv/bin/python peer_cases.py CASE CONFIG_JSON

Run by scripts/bench.py --peers with the interpreter of .bench/venv, where
those libraries are installed (they are no dependency of gkbroad). No gevent
here: quixstreams runs on confluent-kafka (librdkafka threads), faust on
asyncio. In the io cases the quixstreams handler blocks in time.sleep, as a
plain function does; the faust agent awaits asyncio.sleep, as an async handler
must.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

from common import Counter, emit


def quix(config: dict) -> dict:
    from quixstreams import Application

    counter = Counter(config["limit"], config.get("sleep", 0.0))
    app = Application(
        broker_address=config["bootstrap"],
        consumer_group=config["group"],
        auto_offset_reset="earliest",
        loglevel="WARNING",
    )
    topic = app.topic(config["topic"], value_deserializer="bytes", key_deserializer="bytes")
    sdf = app.dataframe(topic)

    def handle(value):
        counter.handle(value)
        if counter.done.is_set():
            app.stop()

    sdf.update(handle)
    app.run()
    return counter.result()


def faust_agent(config: dict) -> None:
    """Runs the worker until the agent has handled `limit` records; the result is
    emitted from the agent, before the worker stops (SIGTERM, its own way out)."""
    import faust

    counter = Counter(config["limit"])
    sleep = config.get("sleep", 0.0)
    app = faust.App(
        config["group"],
        broker=f"kafka://{config['bootstrap']}",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        topic_disable_leader=True,
    )
    topic = app.topic(config["topic"], value_serializer="raw", key_serializer="raw")

    @app.agent(topic)
    async def handle(stream):
        async for value in stream:
            if sleep:
                counter.started()
                await asyncio.sleep(sleep)
                counter.handled(1)
            else:
                counter.handle(value)
            if counter.count == counter.limit:
                emit("result", case=config["case"], **counter.result())
                os.kill(os.getpid(), signal.SIGTERM)

    faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


def main(case: str, config: dict) -> None:
    started = time.monotonic()
    if case.startswith("faust"):
        faust_agent({**config, "case": case})
        return
    result = quix(config)
    emit("result", case=case, wall=round(time.monotonic() - started, 2), **result)


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
