"""The pipeline of the processes case (processes_case.py), run by `gkbroad run --processes N`.

The noop case's handler (Counter.handle per record). Every process that runs it
reports on stdout (its supervisor's: the workers inherit it) every
REPORT_EVERY seconds, once it has handled a record, how many it handled, the
perf_counter time of its last one (CLOCK_MONOTONIC on Linux: one clock for
every process) and its CPU time. Several processes share that
stdout, so each report is one write(2) of one line (atomic below PIPE_BUF).
"""

from __future__ import annotations

import json
import os
import time

import gevent
from common import PREFIX, Counter

import gkbroad

REPORT_EVERY = 0.2


class Reporter:
    def __init__(self, counter: Counter):
        self.counter = counter

    def after_pipeline_start(self, pipeline) -> None:
        gevent.spawn(self._report)

    def _report(self) -> None:
        while True:
            gevent.sleep(REPORT_EVERY)
            counter = self.counter
            if counter.first is None:
                continue
            event = {"event": "progress", "pid": os.getpid(), "count": counter.count, "last": counter.last,
                     "cpu": time.process_time()}  # fmt: skip
            os.write(1, (PREFIX + json.dumps(event) + "\n").encode())


class CountingPipeline(gkbroad.Pipeline):
    def __init__(self, **options):
        counter = Counter(10**12)
        super().__init__(**{**options, "context": counter})
        self.hooks.add(Reporter(counter))

    def handle_message(self, processor, message, context: Counter):
        context.handle(message.data)
        return message
