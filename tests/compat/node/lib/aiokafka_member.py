"""One aiokafka consumer-group member, driven by groups.test.js (mixed kafkajs + aiokafka group).

Usage: python aiokafka_member.py '<json config>'
  config keys: bootstrap, topic, group, client_id, deadline_s

Shared assignor: kafkajs 2.2.4 offers only "RoundRobinAssigner" (protocol name
"RoundRobinAssigner", version 0); aiokafka's RoundRobinPartitionAssignor is
named "roundrobin". Both encode JoinGroup metadata and SyncGroup assignments
with the standard ConsumerProtocol layout (kafkajs lib/consumer/assignerProtocol.js
MemberMetadata / MemberAssignment; aiokafka coordinator/protocol.py
ConsumerProtocolMemberMetadata / ConsumerProtocolMemberAssignment: int16 version,
[string] topics | [(string topic, [int32 partition])], bytes user data), and both
assign round-robin over the member ids sorted, so the aiokafka assignor only
needs kafkajs' name. With it the broker finds a protocol every member supports.

Processing is "apply on commit": after each getmany() the records of a
partition are committed (commit({tp: last + 1})); only when that commit
succeeds are they reported as applied. A failed commit (the group rebalanced)
drops them; whoever owns the partition next reads them again from the
committed offset.

stdout, one JSON object per line (flushed):
  {"event": "ready"}                                   subscribed and started
  {"event": "assigned", "partitions": [...], "generation": g, "member_id": m}
  {"event": "assign", "members": {member_id: [topics]}, "result": {member_id: [partitions]}}
        (this member led the group and ran the assignor)
  {"event": "applied", "partition": p, "records": [[offset, key], ...], "committed": x,
   "generation": g, "member_id": m}
  {"event": "commit_failed", "partition": p, "first": o, "last": o, "error": "..."}
  {"event": "stopped", "reason": "..."}
stdin: a line "stop" (or EOF) makes it stop the consumer (LeaveGroup) and exit 0.
Exits 2 if deadline_s passes first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class KafkajsRoundRobin(RoundRobinPartitionAssignor):
    """aiokafka's round-robin assignor under kafkajs' protocol name."""

    name = "RoundRobinAssigner"
    version = 0

    @classmethod
    def assign(cls, cluster, members):
        result = super().assign(cluster, members)
        emit(
            {
                "event": "assign",
                "members": {m: list(meta.subscription) for m, meta in members.items()},
                "result": {m: [[t, list(ps)] for t, ps in a.assignment] for m, a in result.items()},
            }
        )
        return result


def coordinator_state(consumer):
    # private attributes, for diagnostics only
    coordinator = getattr(consumer, "_coordinator", None)
    return (
        getattr(coordinator, "generation", None),
        getattr(coordinator, "member_id", None),
    )


class Listener(ConsumerRebalanceListener):
    def __init__(self):
        self.consumer = None

    async def on_partitions_revoked(self, revoked):
        pass

    async def on_partitions_assigned(self, assigned):
        generation, member_id = coordinator_state(self.consumer)
        emit(
            {
                "event": "assigned",
                "partitions": sorted(tp.partition for tp in assigned),
                "generation": generation,
                "member_id": member_id,
            }
        )


async def run(cfg) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stop_reason = []

    def read_stdin():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        loop.call_soon_threadsafe(lambda: (stop_reason.append("stdin"), stop.set()))

    threading.Thread(target=read_stdin, daemon=True).start()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=cfg["bootstrap"],
        group_id=cfg["group"],
        client_id=cfg["client_id"],
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=(KafkajsRoundRobin,),
        session_timeout_ms=10_000,
        heartbeat_interval_ms=500,
        # JoinGroup's rebalance timeout; like kafkajs' rebalanceTimeout
        max_poll_interval_ms=60_000,
        request_timeout_ms=30_000,
        retry_backoff_ms=100,
        metadata_max_age_ms=5_000,
    )
    listener = Listener()
    listener.consumer = consumer
    consumer.subscribe([cfg["topic"]], listener=listener)
    await consumer.start()
    emit({"event": "ready"})

    deadline = time.monotonic() + float(cfg.get("deadline_s", 80))
    code = 0
    try:
        while not stop.is_set():
            if time.monotonic() > deadline:
                stop_reason.append("deadline")
                code = 2
                break
            batches = await consumer.getmany(timeout_ms=100, max_records=1000)
            for tp, msgs in batches.items():
                if not msgs:
                    continue
                staged = [[m.offset, m.key.decode()] for m in msgs]
                committed = msgs[-1].offset + 1
                try:
                    await consumer.commit({tp: committed})
                except (CommitFailedError, IllegalStateError) as e:
                    emit(
                        {
                            "event": "commit_failed",
                            "partition": tp.partition,
                            "first": msgs[0].offset,
                            "last": msgs[-1].offset,
                            "error": repr(e),
                        }
                    )
                    continue
                generation, member_id = coordinator_state(consumer)
                emit(
                    {
                        "event": "applied",
                        "partition": tp.partition,
                        "records": staged,
                        "committed": committed,
                        "generation": generation,
                        "member_id": member_id,
                    }
                )
    finally:
        await consumer.stop()  # sends LeaveGroup
        emit({"event": "stopped", "reason": stop_reason[0] if stop_reason else "error"})
    return code


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    cfg = json.loads(sys.argv[1])
    return asyncio.run(run(cfg))


if __name__ == "__main__":
    sys.exit(main())
