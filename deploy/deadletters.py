"""`./dev deadletters`: list and replay the dead letters of a running suite's services.

    ./dev deadletters list [--service auth] [--consumer NAME] [--replayed]
    ./dev deadletters replay --service auth (--id 3 --id 4 | --all)

Talks to each service's OperationsService on its gRPC port: the launcher's ports
(FRONTDESK_PORT_BASE), or FRONTDESK_<SERVICE>_ADDR when set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import grpc
from frontdesk.v1 import operations_pb2, operations_pb2_grpc

from deploy.launcher import SERVICES, Plan, launcher_identity


def connect(address: str, service: str, plan: Plan) -> grpc.aio.Channel:
    """A channel carrying the launcher's identity (its key and certificate in the data folder):
    OperationsService needs the launcher's Operations:manage."""
    return launcher_identity(plan.data_dir).channel(address, service)


def address(service: str, plan: Plan) -> str:
    return os.environ.get(
        f"FRONTDESK_{service.upper()}_ADDR", f"127.0.0.1:{plan.service_ports[service]}"
    )


async def list_letters(services: list[str], consumer: str, replayed: bool, plan: Plan) -> int:
    total = 0
    for service in services:
        async with connect(address(service, plan), service, plan) as ch:
            stub = operations_pb2_grpc.OperationsServiceStub(ch)
            resp = await stub.ListDeadLetters(
                operations_pb2.ListDeadLettersRequest(
                    consumer=consumer, include_replayed=replayed, limit=1000
                ),
                timeout=10,
            )
        for dl in resp.dead_letters:
            total += 1
            state = "replayed" if dl.HasField("replayed_at") else "waiting"
            print(
                f"{service:<11} #{dl.id:<6} {dl.consumer:<20} {state:<8} "
                f"{dl.failed_at.ToDatetime():%Y-%m-%d %H:%M:%S} {dl.subject}\n"
                f"{'':<12}event {dl.event_id or '(unparseable)'} after {dl.deliveries} "
                f"failure(s): {dl.error}"
            )
    print(f"{total} dead letter(s)")
    return 0


async def replay(service: str, ids: list[int], all_: bool, plan: Plan) -> int:
    async with connect(address(service, plan), service, plan) as ch:
        stub = operations_pb2_grpc.OperationsServiceStub(ch)
        resp = await stub.ReplayDeadLetters(
            operations_pb2.ReplayDeadLettersRequest(ids=ids, all=all_), timeout=60
        )
    failed = 0
    for r in resp.results:
        print(f"#{r.id}: {r.outcome}" + (f" ({r.error})" if r.error else ""))
        failed += r.outcome not in ("applied", "duplicate")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev deadletters")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list dead letters")
    ls.add_argument("--service", choices=SERVICES, action="append")
    ls.add_argument("--consumer", default="")
    ls.add_argument("--replayed", action="store_true", help="include replayed ones")
    rp = sub.add_parser("replay", help="hand dead letters to their consumer again")
    rp.add_argument("--service", choices=SERVICES, required=True)
    rp.add_argument("--id", type=int, action="append", default=[])
    rp.add_argument("--all", action="store_true")
    args = parser.parse_args(argv)
    plan = Plan.from_env()
    try:
        if args.command == "list":
            services = args.service or list(SERVICES)
            return asyncio.run(list_letters(services, args.consumer, args.replayed, plan))
        if not args.id and not args.all:
            parser.error("replay needs --id N (repeatable) or --all")
        return asyncio.run(replay(args.service, args.id, args.all, plan))
    except grpc.aio.AioRpcError as exc:
        print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
