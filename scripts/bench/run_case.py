"""Runs one benchmark case in this process: python run_case.py CASE CONFIG_JSON.

Patches with gevent before anything else, as a gkbroad program must (the
kafka-python baselines run patched too), and reports the result on stdout
(see common.py).
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from common import emit  # noqa: E402


def main(case: str, config: dict) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from gkbroad_cases import CASES as GKBROAD_CASES
    from raw_cases import CASES as RAW_CASES

    run = {**RAW_CASES, **GKBROAD_CASES}[case]
    started = time.monotonic()
    result = run(config)
    emit("result", case=case, wall=round(time.monotonic() - started, 2), **result)


if __name__ == "__main__":
    main(sys.argv[1], json.loads(sys.argv[2]))
