"""`kws-fleet`: provision, update (signed models) and monitor a fleet of nodes over MQTT.

Thin argparse layer; the work is in the modules beside it."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edge_node.setting import number
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


def cmd_keygen(args: argparse.Namespace) -> int:
    from provisioning.keys import keygen

    private, public, kid = keygen(args.out, args.force)
    print(f"wrote {private} (keep it secret) and {public} (key id {kid}); give the nodes "
          f"{public.name} as ota.public_key")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from edge_node.ota.package import build_package, load_private_key

    package = build_package(args.model, load_private_key(args.key), args.version)
    package.write(args.out)
    m = package.manifest
    print(f"signed {m['name']} {m['version']} ({m['size']} bytes, sha256 {m['sha256'][:12]}) "
          f"-> {args.out}")
    return 0


def cmd_push_model(args: argparse.Namespace) -> int:
    from edge_node.ota.package import Package
    from provisioning.push import Pusher, inventory_nodes, scope_for

    package = Package.read(args.package)
    pusher = Pusher(broker_options(args))
    try:
        if args.node:
            targets = {args.node}
        elif args.inventory:
            targets = inventory_nodes(args.inventory, args.group)
        else:
            targets = pusher.discover(group=args.group)
        if not targets and not args.offer_only:
            print("kws-fleet: no target nodes (none online; give --inventory?)", file=sys.stderr)
            return 2
        started = time.monotonic()
        offer, results = pusher.push(package, scope_for(args.node, args.group), targets,
                                     args.timeout, args.chunk_size, not args.offer_only,
                                     args.summary, progress=True)
    finally:
        pusher.close()
    if args.offer_only:
        print(f"offered {offer.name} {offer.version} at {offer.scope} (transfer {offer.transfer})")
        return 0
    for r in results:
        print(f"{r.node_id}: {'ok' if r.ok else 'FAILED'} {r.detail}")
    good = sum(r.ok for r in results)
    print(f"{good} of {len(results)} nodes on {offer.version} after "
          f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0 if good == len(results) else 1


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
    s.add_argument("--wait", type=number, default=5.0, help="longest wait for retained state")
    s.add_argument("--interval", type=number, default=1.0, help="redraw period of the table")
    add_broker_args(s)
    s.set_defaults(func=cmd_status)
    t = sub.add_parser("set", help="change a setting on a node, a group or every node")
    t.add_argument("key", help="threshold, refractory, isolation, listening or restart")
    t.add_argument("value")
    which = t.add_mutually_exclusive_group(required=True)
    which.add_argument("--node")
    which.add_argument("--group")
    which.add_argument("--all", action="store_true")
    t.add_argument("--inventory", type=Path, help="groups of nodes that do not report one")
    t.add_argument("--timeout", type=number, default=10.0, help="wait for the nodes' answers")
    add_broker_args(t)
    t.set_defaults(func=cmd_set)
    k = sub.add_parser("keygen", help="make the fleet's Ed25519 model-signing key pair")
    k.add_argument("--out", type=Path, required=True, help="writes fleet.key and fleet.pub")
    k.add_argument("--force", action="store_true", help="replace an existing key")
    k.set_defaults(func=cmd_keygen)
    g = sub.add_parser("sign", help="pack MODEL.tflite, its manifest and a signature")
    g.add_argument("model", type=Path, help="the .tflite (its .json manifest beside it)")
    g.add_argument("--key", type=Path, required=True, help="fleet.key")
    g.add_argument("--version", help="override the manifest's version")
    g.add_argument("--out", type=Path, required=True, help="the package file to write")
    g.set_defaults(func=cmd_sign)
    m = sub.add_parser("push-model", help="install a signed package on a node, a group or "
                                          "every node, and report each node's result")
    m.add_argument("package", type=Path)
    which = m.add_mutually_exclusive_group(required=True)
    which.add_argument("--node")
    which.add_argument("--group")
    which.add_argument("--all", action="store_true")
    m.add_argument("--inventory", type=Path, help="targets for --group/--all (default: the "
                                                  "nodes online now)")
    m.add_argument("--timeout", type=number, default=600.0, help="wait for the nodes' results")
    m.add_argument("--chunk-size", type=int, default=64 * 1024)
    m.add_argument("--summary", default="", help="release summary shown in Home Assistant")
    m.add_argument("--offer-only", action="store_true",
                   help="offer without installing (Home Assistant's update entity installs)")
    add_broker_args(m)
    m.set_defaults(func=cmd_push_model)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from edge_node.ota.package import PackageError

    try:
        return args.func(args)
    except (InventoryError, BrokerError, PackageError, OSError, ValueError) as exc:
        print(f"kws-fleet: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
