"""The CPU that verified identity adds to a backend call, measured in one run.

    .venv/bin/python bench/bench_principals.py [--calls 600] [--rounds 15]

Two in-process gRPC servers answer the same trivial unary method: one plain, one behind the
chassis' VerifyingInterceptor; the client of the second signs with SigningInterceptor (a
service principal, cached as in production). Reported: process CPU time per call (client and
server, same process) for each, the difference, and the raw cost of verifying a principal never
seen before (Ed25519 signature check + claims) versus one already verified (cache hit).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import grpc

from services.chassis.grpcio import channel, create_server
from services.chassis.identity import SigningInterceptor, VerifyingInterceptor
from services.chassis.principals import KeyRing, Signer, Verifier, generate_key

METHOD = "/bench.Echo/Ping"


def _register(server: grpc.aio.Server) -> list[str]:
    async def ping(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    handler = grpc.unary_unary_rpc_method_handler(
        ping, request_deserializer=None, response_serializer=None
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("bench.Echo", {"Ping": handler})]
    )
    return []


async def _cpu_per_call(ch: grpc.aio.Channel, calls: int, concurrency: int = 8) -> float:
    ping = ch.unary_unary(METHOD, request_serializer=None, response_deserializer=None)

    async def worker(n: int) -> None:
        for _ in range(n):
            await ping(b"x")

    await worker(50)  # warm up the connection and caches
    started = time.process_time()
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    return (time.process_time() - started) / (calls // concurrency * concurrency)


async def main(calls: int, rounds: int) -> None:
    signer = Signer("gateway", generate_key())
    verifier = Verifier("bench", KeyRing([signer.trusted()]))

    plain_server, plain_port, _ = await create_server("127.0.0.1:0", "bench", _register)
    verified_server, verified_port, _ = await create_server(
        "127.0.0.1:0", "bench", _register, interceptors=[VerifyingInterceptor(verifier)]
    )

    async def source(audience: str, request: Any) -> str:
        return signer.service_token(audience)  # cached, as every component's own principal

    signing = SigningInterceptor("bench", source)
    plain_ch = channel(f"127.0.0.1:{plain_port}")
    signed_ch = channel(f"127.0.0.1:{plain_port}", interceptors=[signing])
    verified_ch = channel(f"127.0.0.1:{verified_port}", interceptors=[signing])
    try:
        # Alternate the two a few times so neither gets the warmer machine.
        # Short rounds interleaved and paired: the machine is shared, so each round compares
        # the three channels within the same few hundred milliseconds; medians of the rounds.
        plain, signed, verified = [], [], []
        for _ in range(rounds):
            plain.append(await _cpu_per_call(plain_ch, calls))
            signed.append(await _cpu_per_call(signed_ch, calls))
            verified.append(await _cpu_per_call(verified_ch, calls))
        p = statistics.median(plain)
        d_sign = statistics.median(s - q for s, q in zip(signed, plain, strict=True))
        d_verify = statistics.median(v - s for v, s in zip(verified, signed, strict=True))
        d_all = statistics.median(v - q for v, q in zip(verified, plain, strict=True))
        print(f"gRPC call, no principal:             {p * 1e6:8.1f} us CPU per call (median)")
        print(
            f"  client signing interceptor adds:   {d_sign * 1e6:8.1f} us (median of paired rounds)"
        )
        print(f"  server verifying interceptor adds: {d_verify * 1e6:8.1f} us")
        print(f"identity adds per call, in all:      {d_all * 1e6:8.1f} us ({d_all / p:.0%})")

        n = 2000
        fresh = [signer.service_token(f"bench-{i}") for i in range(n)]
        fresh_verifiers = [Verifier(f"bench-{i}", KeyRing([signer.trusted()])) for i in range(n)]
        started = time.process_time()
        for token, ver in zip(fresh, fresh_verifiers, strict=True):
            await ver.verify(token)
        first = (time.process_time() - started) / n
        token = signer.service_token("bench")
        await verifier.verify(token)
        started = time.process_time()
        for _ in range(n):
            await verifier.verify(token)
        hit = (time.process_time() - started) / n
        started = time.process_time()
        for i in range(n):
            signer.sign(
                audience="bench",
                subject="service:gateway",
                workspace="",
                surface="service",
                permissions=[str(i)],
            )
        sign = (time.process_time() - started) / n
        print(f"verify a principal first seen:       {first * 1e6:8.1f} us")
        print(f"verify a principal already seen:     {hit * 1e6:8.1f} us")
        print(f"sign a principal:                    {sign * 1e6:8.1f} us")
    finally:
        await plain_ch.close()
        await signed_ch.close()
        await verified_ch.close()
        await plain_server.stop(0)
        await verified_server.stop(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=600, help="calls per round")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
