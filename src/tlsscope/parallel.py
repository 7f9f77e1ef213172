"""One capture file over several processes (``tlsscope read -j N`` on a single file).

Every worker reads the whole file (the header walk is cheap) but handles only the TCP flows
whose port sum falls to it (``CaptureReader.shard``). Segments of the other flows only advance
its TCP clock (``TcpReassembler.tick``), so idle sweeps close flows at the same packets as in
a single process; the reader passes them on only when a sweep is due (``CaptureReader.wake``).

Each output of a worker carries the position at which a single process would have made it.
An output is a connection turning out to be TLS (this fixes its number), a rendered report, or
an empty one for a connection the filters (--sni, --host, --port) leave out.
Positions:

    (p, 0, first frame of the flow, n)    closed by the clock (idle sweep) at capture position p
    (p, 1, 0, n)                          made by the segment at capture position p itself
    (END, 0, first frame of the flow, n)  flows still open at the end of the capture

p is the reader's frame counter, the same in every worker; n counts a worker's outputs, so it
orders the outputs of one flow.

The parent merges the workers' streams by position. It numbers connections in detection order
and rewrites the worker's local number at the head of each line, so the output is byte-identical
to a single process.

Where it can differ: TcpReassembler's cap on open flows (200,000 at once) counts per worker.
Key material learnt from a connection (``--rsa-key`` sessions reused by later resumptions)
stays in its worker; the CLI does not split a file when ``--rsa-key`` is given.
"""

from __future__ import annotations

import gc
import os
from collections import deque
from typing import Callable, Iterator

from .capture import open_capture
from .model import CaptureNote, Datagram, Segment
from .pipeline import Analyzer, Options, RunStats
from .render.lines import LINE_FORMATS, line_head, line_renderer
from .report import chain_failed

END = 1 << 62
BATCH_RECORDS = 256          # outputs per message to the parent
BATCH_ITEMS = 16384          # ... or capture items, whichever comes first


class _Worker:
    """The analysis of one shard, its outputs tagged with positions (runs in the child)."""

    def __init__(self, path: str, options: Options, k: int, n: int, fmt: str, send: Callable):
        self.reader = open_capture(path)
        self.reader.shard = (k, n)
        self.k = k
        self.an = Analyzer(options)
        self.an.on_detect = self._detected
        self._build = self.an._report
        self.an._report = self._report_or_forget
        self.render = line_renderer(fmt)
        self.send = send
        self.out: list = []
        self.n = 0
        self.where = (0, 1, 0)

    def _detected(self, conn_id: int) -> None:
        self.n += 1
        self.out.append((self.where + (self.n,), conn_id, None, False))

    def _report_or_forget(self, conn_id: int, state):
        report = self._build(conn_id, state)
        if report is None:      # filtered out: the parent may forget the number
            self.n += 1
            self.out.append((self.where + (self.n,), conn_id, "", False))
        return report

    def _reports(self, reports) -> None:
        out = self.out
        for r in reports:
            self.n += 1
            out.append((self.where + (self.n,), r.id, self.render(r), chain_failed(r)))

    def _by_flow(self, pos: int, events: list) -> None:
        """Events of the clock or of the end: each flow's share at its own position."""
        conns = self.an._conns
        i, m = 0, len(events)
        while i < m:
            fid = events[i].flow_id
            j = i + 1
            while j < m and events[j].flow_id == fid:   # a flow's events are contiguous
                j += 1
            c = conns.get(fid)
            self.where = (pos, 0, c.state.frame_first if c is not None else 0)
            self._reports(self.an._events(events[i:j]))
            i = j

    def run(self) -> None:
        an, reader, send = self.an, self.reader, self.send
        tcp = an.tcp
        tick, feed, on_events = tcp.tick, tcp.feed, an._events
        stats = an.stats
        out = self.out
        count = 0
        pos = 0
        for item in reader:
            cls = item.__class__
            if cls is tuple:
                pos = reader.frames
                events = tick(item[0])
                reader.wake = tcp.next_sweep
                if events:
                    self._by_flow(pos, events)
            elif cls is Segment:
                pos = reader.frames
                stats.segments += 1
                if item.ts >= tcp.next_sweep:
                    # the sweep's closes belong before this segment's own events; below that time,
                    # feed moves the clock itself and there is nothing to sweep
                    events = tick(item.ts)
                    reader.wake = tcp.next_sweep
                    if events:
                        self._by_flow(pos, events)
                events = feed(item)
                if events:
                    self.where = (pos, 1, 0)
                    reports = on_events(events)
                    if reports:
                        self._reports(reports)
            elif cls is Datagram:
                pos = reader.frames
                events = tick(item.ts)
                reader.wake = tcp.next_sweep
                if events:
                    self._by_flow(pos, events)
                self.where = (pos, 1, 0)
                reports = an.datagram(item)
                if reports:
                    self._reports(reports)
            else:
                an.feed(item)            # secrets and notes: no events
            count += 1
            if count >= BATCH_ITEMS or len(out) >= BATCH_RECORDS:
                send((out, (pos, 2), reader.bytes_read))
                self.out = out = []
                count = 0
        self._by_flow(END, an.finish_events())
        s = an.stats
        notes = [x for x in s.notes if x.__class__ is CaptureNote] if self.k == 0 else []
        send((self.out, None, (s.segments, s.tls_connections, s.non_tls_flows, notes)))
        reader.close()


def _child(path, options, k, n, fmt, conn) -> None:
    try:
        _Worker(path, options, k, n, fmt, conn.send).run()
    except KeyboardInterrupt:
        pass
    except BaseException as e:  # noqa: BLE001 - reported by the parent, never a silent hang
        import traceback
        try:
            conn.send(("error", f"worker {k}: {type(e).__name__}: {e}\n{traceback.format_exc()}"))
        except Exception:  # noqa: BLE001
            pass
    finally:
        conn.close()
        os._exit(0)              # no atexit handlers or buffered stdout of the parent


class WorkerError(RuntimeError):
    """A worker process failed (its message and traceback in str())."""


def read_sharded(path: str, options: Options, jobs: int, fmt: str,
                 stats_out: list | None = None,
                 on_progress: Callable[[int], None] | None = None) -> Iterator[tuple[str, bool]]:
    """The lines of ``fmt`` ("summary" or "json") for ``path``, in the order and with the
    numbers of a single process, made by ``jobs`` processes; with whether a chain failed."""
    import multiprocessing

    if fmt not in LINE_FORMATS:
        raise ValueError(f"format must be one of {LINE_FORMATS}")
    if options.conn is not None:
        raise ValueError("connection numbers are only known after the merge: filter with conn in one process")
    # import what every worker needs once, before the fork, instead of once per worker
    line_renderer(fmt)
    from . import enrich, fingerprint, rules  # noqa: F401
    if options.keylog is not None:
        options.keylog.freeze()      # shared with the workers, not copied into each (see freeze)
    ctx = multiprocessing.get_context("fork")
    pipes, procs = [], []
    gc.freeze()                      # the workers' collector leaves the parent's objects (and pages) alone
    try:
        for k in range(jobs):
            recv, send = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(path, options, k, jobs, fmt, send), daemon=True)
            p.start()
            send.close()
            pipes.append(recv)
            procs.append(p)
        gc.unfreeze()
        yield from _merge(pipes, fmt, stats_out, on_progress)
        for p in procs:
            p.join()
    finally:
        gc.unfreeze()
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
        for c in pipes:
            c.close()


def _merge(pipes, fmt: str, stats_out, on_progress) -> Iterator[tuple[str, bool]]:
    n = len(pipes)
    bufs = [deque() for _ in range(n)]
    marks: list = [(-1,)] * n        # every later output of worker w lies after marks[w]
    done = [False] * n
    finals: list = [None] * n
    numbers: dict[tuple[int, int], int] = {}
    next_id = 1
    while True:
        best, bw = None, -1
        for w in range(n):
            if bufs[w]:
                key = bufs[w][0][0]
                if best is None or key < best:
                    best, bw = key, w
        wait = -1
        for w in range(n):
            if not bufs[w] and not done[w] and (best is None or marks[w] < best):
                wait = w
                break
        if wait >= 0:
            try:
                msg = pipes[wait].recv()
            except EOFError:
                raise WorkerError(f"worker {wait} ended without its results") from None
            if msg[0] == "error":
                raise WorkerError(msg[1])
            records, mark, extra = msg
            bufs[wait].extend(records)
            if mark is None:
                done[wait] = True
                finals[wait] = extra
            else:
                marks[wait] = mark
                if wait == 0 and on_progress is not None:
                    on_progress(extra)
            continue
        if best is None:
            break
        _key, local, text, failed = bufs[bw].popleft()
        if text is None:
            numbers[(bw, local)] = next_id
            next_id += 1
            continue
        number = numbers.pop((bw, local))
        if not text:
            continue
        head = line_head(fmt, local)
        if not text.startswith(head):
            raise WorkerError(f"a rendered line does not start with {head!r}")
        yield line_head(fmt, number) + text[len(head):], failed
    if numbers:     # every TLS connection ends in a report or a filtered-out close
        raise WorkerError(f"{len(numbers)} connections were numbered but never closed")
    if stats_out is not None:
        st = RunStats()
        for seg, tls, non_tls, notes in finals:
            st.segments += seg
            st.tls_connections += tls
            st.non_tls_flows += non_tls
            st.notes.extend(notes)
        stats_out.append(st)


__all__ = ["read_sharded", "WorkerError"]
