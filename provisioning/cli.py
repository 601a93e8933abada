"""`kws-fleet`: provision nodes from an inventory, watch them, change their settings.
Thin argparse layer; the work is in the modules beside it."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from provisioning.broker import BrokerError, add_broker_args, broker_options
from provisioning.inventory import InventoryError, load_inventory


def inventory_groups(path: Path | None) -> dict[str, str]:
    return {} if path is None else {n.id: n.group for n in load_inventory(path).nodes}


def cmd_render(args: argparse.Namespace) -> int:
    from provisioning.render import render

    done = render(load_inventory(args.inventory), args.out)
    print(f"rendered {done.nodes} nodes into {done.out}"
          + (f"; new broker accounts: {', '.join(done.new_accounts)}" if done.new_accounts
             else ""))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from provisioning.status import FleetStatus, add_inventory, as_json, table

    groups = inventory_groups(args.inventory)
    fleet = FleetStatus(broker_options(args))
    try:
        fleet.wait_settled(args.wait)
        live = sys.stdout.isatty() and not (args.json or args.once)
        while True:
            now = time.time()
            states = add_inventory(fleet.snapshot(), groups)
            text = as_json(states, now) if args.json else table(states, now)
            print(("\033[H\033[J" if live else "") + text, flush=True)
            if not live:
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        fleet.close()


def cmd_set(args: argparse.Namespace) -> int:
    from provisioning.control import set_setting

    answers = set_setting(broker_options(args), args.key, args.value, node=args.node,
                          group=args.group, groups=inventory_groups(args.inventory),
                          timeout=args.timeout)
    for a in answers:
        print(f"{a.node_id}: {a.outcome}" + (f" ({a.detail})" if a.detail else ""))
    good = sum(a.outcome in ("ok", "sent") for a in answers)
    print(f"{good} of {len(answers)} nodes took {args.key}={args.value}", file=sys.stderr)
    return 0 if answers and good == len(answers) else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kws-fleet", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="write node.yaml, broker passwd/ACL, units, setup scripts")
    r.add_argument("inventory", type=Path)
    r.add_argument("--out", type=Path, default=Path("fleet"))
    r.set_defaults(func=cmd_render)
    s = sub.add_parser("status", help="a live table of every node (online, model, last "
                                      "detection, latency, uptime)")
    s.add_argument("--json", action="store_true", help="one JSON snapshot")
    s.add_argument("--once", action="store_true", help="print one table and exit")
    s.add_argument("--inventory", type=Path, help="also list nodes that never connected")
    s.add_argument("--wait", type=float, default=5.0, help="longest wait for retained state")
    s.add_argument("--interval", type=float, default=1.0, help="redraw period of the table")
    add_broker_args(s)
    s.set_defaults(func=cmd_status)
    t = sub.add_parser("set", help="change a setting on a node, a group or every node")
    t.add_argument("key", help="threshold, refractory, listening or restart")
    t.add_argument("value")
    which = t.add_mutually_exclusive_group(required=True)
    which.add_argument("--node")
    which.add_argument("--group")
    which.add_argument("--all", action="store_true")
    t.add_argument("--inventory", type=Path, help="groups of nodes that do not report one")
    t.add_argument("--timeout", type=float, default=10.0, help="wait for the nodes' answers")
    add_broker_args(t)
    t.set_defaults(func=cmd_set)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (InventoryError, BrokerError, OSError) as exc:
        print(f"kws-fleet: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
