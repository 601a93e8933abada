"""`kws-fleet`: provision and monitor a fleet of kws-edge-node nodes over standard MQTT.
Thin argparse layer; the work is in the modules beside it."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from provisioning.broker import BrokerError, add_broker_args, broker_options


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
    m.add_argument("--timeout", type=float, default=600.0, help="wait for the nodes' results")
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
    except (BrokerError, PackageError, OSError, ValueError) as exc:
        print(f"kws-fleet: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
