"""Whether a job runs on several hosts: one rule (kx.backends.cluster), for the cluster and for train.py's
leave-at-once on failure."""

import pytest

from kx.backends.cluster import Cluster, on_several_hosts


@pytest.mark.parametrize(
    ("hosts", "several"),
    [(None, False), ('["algo-1"]', False), ('["algo-1", "algo-2"]', True), ("not json", False)],
)
def test_several_hosts_is_what_sm_hosts_lists(hosts, several):
    env = {} if hosts is None else {"SM_HOSTS": hosts, "SM_CURRENT_HOST": "algo-1"}
    assert on_several_hosts(env) is several
    if hosts != "not json":
        assert (Cluster.from_env(env).size > 1) is several
