"""Fixtures of the cluster suite: a fresh three-node spool cluster per test (see cluster_harness).

Refuses to run outside a private network namespace (it adds iptables rules): skips there, or
fails when SPOOL_CLUSTER_REQUIRED=1. On a failed test the tail of every node's log is attached.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cluster_harness as ch  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    cluster = getattr(item, "_spool_cluster", None)
    if cluster is not None and report.failed:
        for title, tail in cluster.log_tails():
            report.sections.append((title, tail))


@pytest.fixture(scope="session")
def spool_binary_copy(tmp_path_factory):
    """The broker binary, copied once per session (see SpoolNode.argv)."""
    binary = ch.spool_bin()
    if not binary.exists():
        pytest.fail(f"spool binary not found at {binary}: build it or set SPOOL_BIN", pytrace=False)
    copy = tmp_path_factory.mktemp("bin") / "spool"
    shutil.copy2(binary, copy)
    return copy


@pytest.fixture
def cluster(request, tmp_path):
    problem = ch.private_netns_problem()
    if problem:
        if os.environ.get("SPOOL_CLUSTER_REQUIRED") == "1":
            pytest.fail(f"cluster suite required but cannot run: {problem}", pytrace=False)
        pytest.skip(problem)
    c = ch.Cluster(tmp_path, request.getfixturevalue("spool_binary_copy"))
    request.node._spool_cluster = c
    try:
        c.start()
    except BaseException:
        c.stop()
        raise
    yield c
    problems = c.stop()
    if problems:
        pytest.fail("cluster teardown: " + "; ".join(problems) + " (log tails attached)",
                    pytrace=False)
