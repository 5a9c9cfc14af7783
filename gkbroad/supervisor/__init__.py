"""``gkbroad run --processes N``: a supervisor process that runs N workers of one pipeline.

Each worker is a fresh interpreter running ``gkbroad run`` on the same
configuration, one member of the consumer group; the supervisor runs no
pipeline. `Supervisor` starts the workers, restarts those that die and stops
them all on SIGTERM/SIGINT; `SupervisorStatus` gathers their status pages into
one; `WorkerLink` is a worker's side of the arrangement (who it is, the channel
back to its supervisor) and `worker_options` what differs between workers'
options. The environment the workers get is described in
gkbroad.observability.worker and channel.
"""

from .status import SupervisorStatus
from .supervisor import Supervisor
from .worker import WorkerLink, worker_options

__all__ = ["Supervisor", "SupervisorStatus", "WorkerLink", "worker_options"]
