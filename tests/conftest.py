"""Suite-wide switch: GKBROAD_GEVENT_PATCH=1 applies gevent.monkey.patch_all()
before anything else is imported, the way a gevent application must start."""

import os

if os.environ.get("GKBROAD_GEVENT_PATCH") == "1":
    from gevent import monkey

    monkey.patch_all()
