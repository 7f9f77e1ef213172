"""QUIC peers for the generator (aioquic, `pip install aioquic`), run as separate processes.

server: an echo server (each stream's data sent back, then the stream closed), with a fixed ALPN,
        optionally forcing a Retry; it keeps the session tickets it issues, so clients can resume
        (and send 0-RTT data); prints READY once listening.
client: opens one connection, sends one line on a bidirectional stream, prints what comes back
        and how the connection ended (the peer's CONNECTION_CLOSE error code, if any). With
        --early-data: a first connection only to get a session ticket, then a second one that resumes
        with it and sends its line as 0-RTT data, before the handshake completes.
Both append their TLS secrets to --keylog (SSLKEYLOGFILE format).
"""

from __future__ import annotations

import argparse
import asyncio
import sys


async def run_server(a) -> None:
    from aioquic.asyncio import QuicConnectionProtocol, serve
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import StreamDataReceived

    class Echo(QuicConnectionProtocol):
        def quic_event_received(self, event) -> None:
            if isinstance(event, StreamDataReceived):
                self._quic.send_stream_data(event.stream_id, event.data, end_stream=event.end_stream)
                self.transmit()

    cfg = QuicConfiguration(is_client=False, alpn_protocols=[a.alpn], secrets_log_file=open(a.keylog, "a"))
    cfg.load_cert_chain(a.cert, a.key)
    tickets: dict = {}
    await serve(a.host, a.port, configuration=cfg, create_protocol=Echo, retry=a.retry,
                session_ticket_fetcher=tickets.pop,
                session_ticket_handler=lambda t: tickets.__setitem__(t.ticket, t))
    print("READY", flush=True)
    await asyncio.sleep(a.lifetime)


async def run_client(a) -> int:
    from aioquic.asyncio import connect
    from aioquic.quic.configuration import QuicConfiguration

    def config(ticket=None) -> QuicConfiguration:
        cfg = QuicConfiguration(is_client=True, alpn_protocols=[a.alpn], server_name=a.sni,
                                secrets_log_file=open(a.keylog, "a"), session_ticket=ticket)
        cfg.load_verify_locations(a.ca)
        return cfg

    try:
        ticket = None
        if a.early_data:
            tickets: list = []
            async with connect(a.host, a.port, configuration=config(), session_ticket_handler=tickets.append) as c:
                await c.ping()
                for _ in range(50):             # the ticket comes after the handshake
                    if tickets:
                        break
                    await asyncio.sleep(0.05)
            if not tickets:
                print("NO TICKET", flush=True)
                return 1
            ticket = tickets[-1]
        # with a ticket: not waiting for the handshake, so the line leaves as 0-RTT data
        async with connect(a.host, a.port, configuration=config(ticket), wait_connected=ticket is None) as client:
            reader, writer = await client.create_stream()
            writer.write(a.send.encode())
            writer.write_eof()
            data = await asyncio.wait_for(reader.read(), a.timeout)
            print("ECHO", data.decode(errors="replace").strip(), flush=True)
            if ticket is not None:
                print("EARLY", client._quic.tls.early_data_accepted, flush=True)
        return 0
    except Exception as e:  # noqa: BLE001 - the generator checks the outcome it expects
        print("CLOSED", type(e).__name__, e, flush=True)
        return 1


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("server", "client"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--alpn", default="tlsscope")
    p.add_argument("--keylog", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    p.add_argument("--sni")
    p.add_argument("--retry", action="store_true")
    p.add_argument("--early-data", action="store_true")
    p.add_argument("--send", default="hello over quic\n")
    p.add_argument("--lifetime", type=float, default=30.0)
    p.add_argument("--timeout", type=float, default=5.0)
    a = p.parse_args()
    if a.role == "server":
        asyncio.run(run_server(a))
        return 0
    return asyncio.run(asyncio.wait_for(run_client(a), a.timeout + 5))


if __name__ == "__main__":
    sys.exit(main())
