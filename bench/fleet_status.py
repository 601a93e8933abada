"""`kws-fleet status` tracking a large fleet: how long until every node is seen, how fast
changes show up, and what it costs in memory.

A private Mosquitto loads the password file and ACL that `kws-fleet render` wrote for an
inventory of N nodes (so every login and publish pays the real authentication and ACL checks).
Simulated nodes (bench/fleet_sim.py: the node's own MQTT wiring, in a few processes) connect
and publish their retained availability, discovery, states and status. Then:

- cold start: the `kws-fleet status --json --once` command as a user runs it (wall time, nodes
  listed, peak RSS, also against the empty broker first: the difference is what N nodes cost),
  and the collector in this process (time until all N are seen online
  with a status; time until the retained-backlog probe returned);
- single changes: detections on random nodes; latency = arrival at the collector - the
  detection's own `timestamp` in the node's payload;
- fleet-wide change: every node publishes a new status at once; time until the collector
  holds all N new values;
- going offline: a tenth of the nodes shut down cleanly; time until all are shown offline.

Run: `.venv/bin/python -m bench.fleet_status [--nodes 1000] [--procs 10]`
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

from provisioning.broker import BrokerOptions
from provisioning.inventory import load_inventory
from provisioning.render import render
from provisioning.status import FleetStatus, NodeState
from tests.support.fleet_helpers import fleet_broker
from tests.support.mqtt_node import REPO
from training.evaluation.benchmarks import machine, write_section


class Sims:
    """The simulated nodes, split over a few processes."""

    def __init__(self, port: int, secrets: Path, nodes: int, procs: int, state: Path) -> None:
        per = -(-nodes // procs)
        self.ranges = [(f, min(per, nodes - f)) for f in range(0, nodes, per)]
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "bench.fleet_sim", str(port), str(secrets), str(f), str(n),
             str(state)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for f, n in self.ranges]
        for p in self.procs:
            self._expect(p, "ready")

    @staticmethod
    def _expect(proc: subprocess.Popen[str], word: str) -> None:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != word:
            raise RuntimeError(f"simulator said {line!r}, expected {word!r}")

    def send(self, line: str, only: int | None = None) -> None:
        targets = self.procs if only is None else [self.procs[only]]
        for p in targets:
            assert p.stdin is not None
            p.stdin.write(line + "\n")
            p.stdin.flush()
        for p in targets:
            self._expect(p, "done")

    def detect(self, index: int, label: str) -> None:
        proc = next(i for i, (f, n) in enumerate(self.ranges) if f <= index < f + n)
        self.send(f"detect {index} {label}", only=proc)

    def close(self) -> None:
        for p in self.procs:
            try:
                assert p.stdin is not None
                p.stdin.write("quit\n")
                p.stdin.flush()
                p.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                p.kill()


def run_status_cli(port: int, secrets: Path) -> tuple[str, float, float]:
    """`kws-fleet status --json --once` as a user runs it: stdout, wall time, peak RSS (MB)."""
    t = time.monotonic()
    cli = subprocess.Popen(
        [sys.executable, "-m", "provisioning.cli", "status", "--json", "--once", "--mqtt-host",
         "127.0.0.1", "--mqtt-port", str(port), "--password-file", str(secrets)], cwd=REPO,
        stdout=subprocess.PIPE, text=True)
    assert cli.stdout is not None
    stdout = cli.stdout.read()
    _, code, usage = os.wait4(cli.pid, 0)
    cli.returncode = os.waitstatus_to_exitcode(code)
    if cli.returncode != 0:
        raise RuntimeError(f"kws-fleet status exited with {cli.returncode}")
    return stdout, time.monotonic() - t, usage.ru_maxrss / 1024


def wait_until(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(0.002)
    return time.monotonic() - start


def measure(folder: Path, nodes: int, procs: int, detections: int) -> dict[str, float]:
    ids = [f"sim{i:04d}" for i in range(nodes)]
    inventory = folder / "inventory.yaml"
    inventory.write_text(yaml.safe_dump({
        "broker": {"host": "127.0.0.1", "port": 1883},
        "nodes": [{"id": n, "group": f"g{i % 10}"} for i, n in enumerate(ids)]}))
    out = folder / "out"
    t = time.monotonic()
    render(load_inventory(inventory), out)
    r: dict[str, float] = {"nodes": nodes, "render_s": time.monotonic() - t}
    secrets = out / "secrets" / "passwords.yaml"
    broker = fleet_broker(out, folder / "broker")
    sims = None
    try:
        _, _, r["cli_empty_rss_mb"] = run_status_cli(broker.port, secrets)
        t = time.monotonic()
        sims = Sims(broker.port, secrets, nodes, procs, folder / "state")
        r["fleet_up_s"] = time.monotonic() - t

        stdout, r["cli_s"], r["cli_rss_mb"] = run_status_cli(broker.port, secrets)
        listed = json.loads(stdout)["nodes"]
        r["cli_nodes"] = len(listed)
        r["cli_online"] = sum(1 for n in listed if n["online"])

        arrivals: dict[tuple[str, str], float] = {}
        lock = threading.Lock()

        def changed(state: NodeState, key: str) -> None:
            with lock:
                arrivals[(state.node_id, key)] = time.time()

        options = BrokerOptions("127.0.0.1", broker.port, "kws-fleet",
                                yaml.safe_load(secrets.read_text())["kws-fleet"])
        t = time.monotonic()
        fleet = FleetStatus(options, on_change=changed)

        def complete() -> bool:
            snap = fleet.nodes.copy()
            return len(snap) == nodes and all(s.online and s.status_at for s in snap.values())

        seen_at = probe_at = None
        while seen_at is None or probe_at is None:
            now = time.monotonic()
            if now - t > 120:
                raise RuntimeError("the collector did not see every node")
            if probe_at is None and fleet.settled.is_set():
                probe_at = now - t
            if seen_at is None and complete():
                seen_at = now - t
            time.sleep(0.002)
        r["all_seen_s"], r["probe_s"] = seen_at, probe_at

        rng = random.Random(1)
        latencies = []
        for _ in range(detections):
            index = rng.randrange(nodes)
            with lock:
                arrivals.pop((ids[index], "last_command"), None)
            sims.detect(index, "go")
            wait_until(lambda i=index: (ids[i], "last_command") in arrivals, 10, "detection")
            state = fleet.nodes[ids[index]]
            latencies.append((arrivals[(ids[index], "last_command")] - (state.last_at or 0))
                             * 1e3)
        r["detect_median_ms"] = float(np.median(latencies))
        r["detect_p95_ms"] = float(np.percentile(latencies, 95))
        r["detect_max_ms"] = float(np.max(latencies))

        t = time.monotonic()
        sims.send("status 7.5")
        wait_until(lambda: all(s.latency_ms == 7.5 for s in list(fleet.nodes.values())), 60,
                   "fleet-wide status")
        r["fleet_update_s"] = time.monotonic() - t

        stop = max(1, nodes // 10 // len(sims.procs))
        t = time.monotonic()
        sims.send(f"stop {stop}")
        stopped = stop * len(sims.procs)
        wait_until(lambda: sum(1 for s in list(fleet.nodes.values()) if s.online is False)
                   >= stopped, 60, "offline")
        r["offline_nodes"] = stopped
        r["offline_s"] = time.monotonic() - t
        fleet.close()
    finally:
        if sims is not None:
            sims.close()
        broker.stop()
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=10,
                        help="simulator processes (paho uses select(): under ~1000 descriptors "
                             "per process, about 150 nodes)")
    parser.add_argument("--detections", type=int, default=200)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(Path(tmp), args.nodes, args.procs, args.detections)
    print(json.dumps(r))
    n = r["nodes"]
    body = [
        f"Machine: {machine()}. `python -m bench.fleet_status --nodes {args.nodes} --procs "
        f"{args.procs}` ({time.monotonic() - started:.0f} s): {n} simulated nodes (the node's "
        f"own MQTT wiring, in {args.procs} processes) on a private Mosquitto 2.0 loading the "
        f"password file and ACL `kws-fleet render` wrote for them (render: "
        f"{r['render_s']:.1f} s); the fleet took {r['fleet_up_s']:.1f} s to connect and "
        "announce. The simulators, the broker and the collector share the 2 cores.",
        "",
        "| measure | result |",
        "|---|---|",
        f"| `kws-fleet status --json --once`, cold (process start to exit) | "
        f"{r['cli_s']:.2f} s, listed {r['cli_nodes']:.0f} nodes ({r['cli_online']:.0f} online), "
        f"peak RSS {r['cli_rss_mb']:.1f} MB ({r['cli_empty_rss_mb']:.1f} MB against an empty "
        f"broker: the peak is the imports; {n} node states add "
        f"{r['cli_rss_mb'] - r['cli_empty_rss_mb']:.1f} MB to it) |",
        f"| collector: all {n} seen online with a status | {r['all_seen_s']:.2f} s "
        f"(backlog probe back after {r['probe_s']:.2f} s) |",
        f"| detection on one node -> collector ({args.detections} detections) | median "
        f"{r['detect_median_ms']:.1f} ms, p95 {r['detect_p95_ms']:.1f} ms, max "
        f"{r['detect_max_ms']:.1f} ms |",
        f"| all {n} nodes publish a new status at once -> all updated | "
        f"{r['fleet_update_s']:.2f} s |",
        f"| {r['offline_nodes']:.0f} nodes shut down -> all shown offline | "
        f"{r['offline_s']:.2f} s |",
    ]
    body += [
        "",
        "Found on the way: Mosquitto queues a subscription's whole retained backlog at once and "
        "drops what exceeds `max_queued_messages` (1000): one subscription to three topics of "
        "1000 nodes lost most of them, so the collector subscribes one topic at a time, and "
        "ha_config raises the limit (Home Assistant's discovery backlog of a large fleet has "
        "the same problem). And detections reached subscribers ~45 ms late before the node set "
        "TCP_NODELAY: paho leaves Nagle on, which held the publishes following a detection.",
    ]
    write_section("fleet-status", f"Fleet status: {n} nodes", "\n".join(body))


if __name__ == "__main__":
    main()
