"""The hosts of a multi-worker job, as SageMaker describes them (``SM_HOSTS``, ``SM_CURRENT_HOST``).

A job with ``instance_count > 1`` runs ``train.py`` once per host. Each run learns the hosts and
its own place among them from the environment; the first host is the chief, which writes the
model and the tracking run. Runs inside jobs: Python 3.8 syntax.
"""

import json
from dataclasses import dataclass, field
from typing import Dict, List, Mapping

from kx.errors import KxError

TF_PORT = 2222  # where each host's TensorFlow worker listens, unless KX_HOST_ADDRESSES says otherwise
ADDRESSES_ENV = "KX_HOST_ADDRESSES"  # JSON {host: "ip:port"}, for hosts whose names do not resolve


class ClusterError(KxError):
    """The environment describes the hosts inconsistently; the message names the variable."""


def listed_hosts(env: Mapping[str, str]) -> object:
    """``SM_HOSTS`` as JSON (an empty list when unset); ValueError when it is not JSON."""
    return json.loads(env.get("SM_HOSTS", "[]"))


def on_several_hosts(env: Mapping[str, str]) -> bool:
    """True in a multi-host job (``SM_HOSTS`` lists more than one host), even where the rest of the
    environment is inconsistent: a failing host must still leave at once (train.py)."""
    try:
        hosts = listed_hosts(env)
    except ValueError:
        return False
    return isinstance(hosts, list) and len(hosts) > 1


@dataclass(frozen=True)
class Cluster:
    """The job's hosts in SageMaker's order and the one this process runs on."""

    hosts: List[str] = field(default_factory=lambda: ["localhost"])
    current_host: str = "localhost"
    addresses: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Cluster":
        """The cluster from ``SM_HOSTS``/``SM_CURRENT_HOST``; one local host when they are absent.

        ``KX_HOST_ADDRESSES`` maps host names to ``ip:port`` where the job network has no DNS for
        them (kx's local rehearsal of a multi-host job, which runs every host on 127.0.0.1).
        """
        if "SM_HOSTS" not in env:
            return cls()
        try:
            hosts = listed_hosts(env)
            addresses = json.loads(env.get(ADDRESSES_ENV, "{}"))
        except ValueError as err:
            raise ClusterError(f"SM_HOSTS or {ADDRESSES_ENV} is not valid JSON ({err}).") from None
        current = env.get("SM_CURRENT_HOST", "")
        if not isinstance(hosts, list) or not hosts or current not in hosts:
            raise ClusterError(
                f"SM_CURRENT_HOST={current!r} is not one of SM_HOSTS={env['SM_HOSTS']}: "
                "expected a JSON list of host names that includes the current host."
            )
        return cls(hosts=[str(h) for h in hosts], current_host=current, addresses=dict(addresses))

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def address(self, host: str, port: int) -> str:
        """``host:port`` for a host, or its entry in ``KX_HOST_ADDRESSES``."""
        return self.addresses.get(host, f"{host}:{port}")

    def tf_config(self) -> Dict[str, object]:
        """``TF_CONFIG`` for ``MultiWorkerMirroredStrategy``: every host a worker, the first the chief."""
        return {
            "cluster": {"worker": [self.address(h, TF_PORT) for h in self.hosts]},
            "task": {"type": "worker", "index": self.rank},
        }

    def describe(self) -> str:
        return f"host {self.current_host} ({self.rank + 1} of {self.size})"
