"""Command line: argument parsing and exit codes only; the work is done by the API."""

from __future__ import annotations

import argparse
import json
import os
import sys

EXIT_OK, EXIT_CHAIN_FAILED, EXIT_ERROR = 0, 1, 2


class UserError(Exception):
    """A problem the user can fix (bad file, bad option): one line, exit 2."""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keylog", action="append", metavar="FILE",
                   help="NSS key log (SSLKEYLOGFILE) to decrypt TLS; may be repeated")
    p.add_argument("--rsa-key", action="append", metavar="FILE",
                   help="server RSA private key (PEM/DER) for RSA key exchange; may be repeated")
    p.add_argument("--ca", action="append", metavar="PATH",
                   help="trust anchors (PEM bundle, DER file or directory) to check chains against; may be repeated")
    p.add_argument("--crl", action="append", metavar="FILE", help="CRL(s) for revocation checks; may be repeated")
    p.add_argument("--hostname", help="host name to check the server certificate against (default: the SNI)")
    p.add_argument("--seclevel", type=int, default=2, choices=range(0, 6), metavar="0-5",
                   help="OpenSSL security level of the verifying peer for key/digest strength "
                        "(default 2, as Debian/Ubuntu/Fedora ship; 0 accepts SHA-1 and 1024-bit RSA)")
    p.add_argument("--partial-chain", action="store_true",
                   help="accept a chain that ends at any --ca certificate, not only at a self-signed root "
                        "(openssl verify -partial_chain; e.g. when --ca holds only the intermediate)")
    p.add_argument("--x509-strict", action="store_true",
                   help="judge chains like openssl verify -x509_strict and Python 3.13+ clients (RFC 5280 profile "
                        "violations, e.g. a CA basicConstraints not critical, fail the chain)")
    p.add_argument("--sni", help="only connections whose SNI matches this (shell-style pattern)")
    p.add_argument("--host", help="only connections with this IP address (or network) at either end")
    p.add_argument("--port", type=int, help="only connections with this TCP port at either end")
    p.add_argument("--conn", type=int, metavar="N", help="only connection number N")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tlsscope", description="Passive TLS handshake inspector.")
    parser.add_argument("--version", action="version", version=f"tlsscope {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    rd = sub.add_parser("read", help="decode every TLS connection in capture files (pcap, pcapng, gzip)")
    rd.add_argument("files", nargs="+", metavar="CAPTURE")
    out = rd.add_mutually_exclusive_group()
    out.add_argument("--summary", action="store_true", help="one line per connection")
    out.add_argument("--json", action="store_true", help="JSON Lines: one object per connection")
    rd.add_argument("-v", "--verbose", action="store_true", help="every field of every message")
    rd.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    rd.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                    help="N processes: several files (or a directory) are shared out; one file with "
                         "--summary or --json is split by TCP flow. Output as with -j 1. Default: "
                         "one file of 4 MB or more with --summary/--json uses every core (up to 4)")
    rd.add_argument("--ladder", metavar="OUT.svg",
                    help="ladder diagram of --conn N: SVG to OUT.svg, or '-' for text art on stdout")
    _add_common(rd)

    lv = sub.add_parser("live", help="the same analysis on live traffic (scapy/libpcap)")
    lv.add_argument("-i", "--interface", required=True, metavar="IFACE")
    lv.add_argument("-f", "--filter", default="tcp", metavar="BPF", help="kernel capture filter (default: tcp; add QUIC with 'tcp or udp')")
    lv.add_argument("-w", "--write", metavar="OUT.pcapng",
                    help="also write what was captured (with the key log as a Decryption Secrets Block)")
    lv.add_argument("--count", type=int, metavar="N", help="stop after N packets")
    lv.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    lv.add_argument("--json", action="store_true",
                    help='JSON Lines: {"event": "handshake"|"end", ...report}')
    lv.add_argument("--summary", action="store_true", help="one line per event")
    lv.add_argument("--key-delay", type=float, metavar="S",
                    help="hold packets S seconds so a growing key log can catch up (default 1 with --keylog)")
    _add_common(lv)

    fo = sub.add_parser("follow", help="the decrypted application data of one connection")
    fo.add_argument("file", metavar="CAPTURE")
    fo.add_argument("--hex", action="store_true", help="hex dump instead of text")
    fo.add_argument("--raw", action="store_true", help="write the raw bytes of both directions to stdout")
    _add_common(fo)
    return parser


def _version() -> str:
    from . import __version__
    return __version__


def _options(args):
    from .api import make_options
    try:
        return make_options(keylog=args.keylog, rsa_key=args.rsa_key, ca=args.ca, crl=args.crl,
                            hostname=args.hostname, sni=args.sni, host=args.host, port=args.port,
                            conn=args.conn, seclevel=args.seclevel, partial_chain=args.partial_chain,
                            x509_strict=args.x509_strict)
    except OSError as e:
        raise UserError(f"{e.filename or ''}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - loaders raise their own one-line errors
        if type(e).__name__ in ("CertStoreError", "KeyLogError", "RsaKeyError", "ValueError"):
            raise UserError(str(e)) from None
        raise


def _progress(reader, enabled: bool):
    """Wrap the capture reader with a progress bar on stderr when it is a terminal."""
    prog, task = _progress_bar(str(reader.path), getattr(reader, "size", 0), enabled)
    if prog is None:
        return reader, None

    def gen():
        n = 0
        for item in reader:
            n += 1
            if n & 0x3FF == 0:
                prog.update(task, completed=reader.bytes_read)
            yield item
    return gen(), prog


def _progress_bar(path: str, size: int, enabled: bool):
    """(started rich Progress, task id) on stderr for a file of ``size`` bytes, or (None, None)
    when disabled, stderr is not a terminal, or the file is too small to bother."""
    if not enabled or not sys.stderr.isatty() or size < 8 << 20:
        return None, None
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
    prog = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                    TimeRemainingColumn(), transient=True, console=_stderr_console())
    task = prog.add_task(os.path.basename(path), total=size)
    prog.start()
    return prog, task


def _stderr_console():
    from rich.console import Console
    return Console(stderr=True)


CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".gz")


def expand_inputs(paths: list[str]) -> list[str]:
    """Files as given; a directory stands for the capture files in it (sorted, not recursive)."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(os.path.join(p, n) for n in os.listdir(p)
                           if n.lower().endswith(CAPTURE_SUFFIXES) and os.path.isfile(os.path.join(p, n)))
            if not found:
                raise UserError(f"{p}: directory holds no capture files (*.pcap, *.pcapng, *.gz)")
            out.extend(found)
        else:
            out.append(p)
    return out


def _read_one_to_file(job):
    """Worker for -j: run `read` on one file, its stdout/stderr going to temporary files.

    Only the file names travel back to the parent, which copies them out in order: memory
    stays bounded whatever the size of the output.
    """
    import tempfile
    argv, path = job
    out = tempfile.NamedTemporaryFile(mode="w", encoding="utf-8", prefix="tlsscope-", suffix=".out", delete=False)
    err = tempfile.NamedTemporaryFile(mode="w", encoding="utf-8", prefix="tlsscope-", suffix=".err", delete=False)
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        rc = main(argv + ["--no-progress", "-j", "1", path])
    except SystemExit as e:     # never let a worker die: the pool would wait for it forever
        rc = e.code if isinstance(e.code, int) else EXIT_ERROR
    finally:
        sys.stdout, sys.stderr = old_out, old_err
        out.close()
        err.close()
    return rc, out.name, err.name


def _copy_out(name: str, dest) -> None:
    import shutil
    try:
        with open(name, encoding="utf-8") as fh:
            shutil.copyfileobj(fh, dest, 1 << 20)
    finally:
        os.unlink(name)


def _read_parallel(args, argv: list[str]) -> int:
    import multiprocessing
    files = args.files
    # the per-file argv: everything but the file (or directory) names as given
    given = set(args.given_files)
    base = [a for a in argv if a not in given]
    ctx = multiprocessing.get_context("fork")
    rcs = []
    with ctx.Pool(min(args.jobs, len(files))) as pool:
        for rc, out_name, err_name in pool.imap(_read_one_to_file, [(base, f) for f in files]):
            _copy_out(out_name, sys.stdout)
            sys.stdout.flush()
            _copy_out(err_name, sys.stderr)
            rcs.append(rc)
    if EXIT_ERROR in rcs:
        return EXIT_ERROR
    return EXIT_CHAIN_FAILED if EXIT_CHAIN_FAILED in rcs else EXIT_OK


SPLIT_MIN_SIZE = 4 << 20       # below, starting processes costs about what they save
SPLIT_MAX_AUTO = 4


def _split_jobs(args, path: str, reader) -> int:
    """How many processes share this one file (1: read it here)."""
    if not (args.summary or args.json) or args.ladder or args.conn is not None or args.rsa_key:
        return 1        # the tree is rendered here; --conn numbers and RSA sessions span flows
    if args.jobs is not None:
        return args.jobs if len(args.files) == 1 else 1
    if getattr(reader, "size", 0) < SPLIT_MIN_SIZE:
        return 1
    return max(1, min(os.cpu_count() or 1, SPLIT_MAX_AUTO))


def _read_split(args, path: str, options, jobs: int, stats: list) -> bool:
    """Read one file with ``jobs`` processes (tlsscope.parallel); True if a chain failed."""
    from .parallel import WorkerError, read_sharded

    prog, task = _progress_bar(str(path), os.path.getsize(path), not args.no_progress)
    failed = False
    write = sys.stdout.write
    try:
        for line, chain_failed in read_sharded(
                path, options, jobs, "json" if args.json else "summary", stats_out=stats,
                on_progress=None if prog is None else (lambda n: prog.update(task, completed=n))):
            write(line)
            failed |= chain_failed
    except WorkerError as e:
        raise UserError(f"{path}: {e}") from None
    finally:
        if prog is not None:
            prog.stop()
    return failed


def _capture_messages(args, path: str, stats) -> None:
    """Problems of the file itself, and a word when it holds no TLS at all (stderr)."""
    if stats is None:
        return
    for note in stats.notes:
        if getattr(note, "code", "") in ("capture_truncated", "capture_corrupt") or type(note).__name__ == "CaptureNote":
            msg = note.message if str(path) in note.message else f"{path}: {note.message}"
            print(f"tlsscope: {msg}", file=sys.stderr)
    if stats.tls_connections == 0 and not args.json:
        print(f"tlsscope: {path}: no TLS connections found ({stats.segments} TCP segments, "
              f"{stats.non_tls_flows} non-TLS flows)", file=sys.stderr)


def cmd_read(args, argv: list[str] | None = None) -> int:
    from .api import with_embedded_secrets
    from .capture import CaptureError, open_capture
    from .pipeline import analyze
    from .render.lines import line_renderer
    from .report import chain_failed

    args.given_files = list(args.files)
    args.files = expand_inputs(args.files)
    if args.jobs is not None and args.jobs < 1:
        raise UserError("-j needs a number of processes of at least 1")
    if args.jobs is not None and args.jobs > 1 and len(args.files) > 1 and argv is not None:
        if args.ladder:
            raise UserError("--ladder works on one connection: use it without -j")
        return _read_parallel(args, argv)

    options = _options(args)
    if args.summary and not args.ladder:
        options.fingerprints = False        # the summary line does not show them
    stdout = sys.stdout
    console = None
    render_line = print_report = None
    if args.summary or args.json:
        render_line = line_renderer("json" if args.json else "summary")
    else:
        from rich.console import Console

        from .render.text import print_report
        console = Console(highlight=False)
    failed_chain = False
    errors = 0
    ladder_reports = []
    for path in args.files:
        try:
            reader = open_capture(path)
        except CaptureError as e:
            print(f"tlsscope: error: {e}", file=sys.stderr)
            errors += 1
            continue
        stats: list = []
        jobs = _split_jobs(args, path, reader)
        if jobs > 1:
            reader.close()
            failed_chain |= _read_split(args, path, with_embedded_secrets(options, path), jobs, stats)
            _capture_messages(args, path, stats[0] if stats else None)
            continue
        items, prog = _progress(reader, not args.no_progress)
        try:
            for report in analyze(items, with_embedded_secrets(options, path), stats_out=stats):
                if args.ladder:
                    ladder_reports.append(report)
                if render_line is not None:
                    stdout.write(render_line(report))
                elif args.ladder == "-":
                    pass        # the ladder replaces the tree
                else:
                    print_report(console, report, verbose=args.verbose)
                failed_chain |= chain_failed(report)
        finally:
            if prog is not None:
                prog.stop()
            reader.close()
        _capture_messages(args, path, stats[0].stats if stats else None)
    if args.ladder:
        if args.conn is None or not ladder_reports:
            raise UserError("--ladder needs --conn N naming a TLS connection in the capture")
        if args.ladder == "-":
            from rich.console import Console

            from .render.ladder import ladder_rich
            con = Console(highlight=False)
            con.print(ladder_rich(ladder_reports[0], width=max(60, min(con.width, 120))), soft_wrap=True)
        else:
            from .render.ladder import ladder_svg
            with open(args.ladder, "w", encoding="utf-8") as fh:
                fh.write(ladder_svg(ladder_reports[0]))
    stdout.flush()
    if errors:
        return EXIT_ERROR
    return EXIT_CHAIN_FAILED if failed_chain else EXIT_OK


def cmd_follow(args) -> int:
    from .capture import CaptureError, open_capture
    from .pipeline import analyze

    if args.conn is None:
        raise UserError("follow needs --conn N (see the numbers in `tlsscope read --summary`)")
    chunks: list[tuple[bool, bytes]] = []
    options = _options(args)
    options.on_plaintext = lambda cid, from_client, data: (
        chunks.append((from_client, data)) if cid == args.conn else None)
    options.fingerprints = False
    try:
        reader = open_capture(args.file)
    except CaptureError as e:
        raise UserError(str(e)) from None
    from .api import with_embedded_secrets
    with reader:
        reports = list(analyze(reader, with_embedded_secrets(options, args.file)))
    if not reports:
        raise UserError(f"{args.file}: no TLS connection number {args.conn}")
    if not chunks:
        dec = reports[0].decryption
        why = "no key log given (--keylog)" if options.keylog is None and options.rsa_keys is None else \
            f"nothing could be decrypted ({json.dumps(dec) if dec else 'no keys matched'})"
        raise UserError(f"{args.file}: connection {args.conn}: no decrypted application data: {why}")
    if args.raw:
        out = sys.stdout.buffer
        for _, data in chunks:
            out.write(data)
        out.flush()
        return EXIT_OK
    for from_client, data in chunks:
        who = "client → server" if from_client else "server → client"
        sys.stdout.write(f"=== {who} ({len(data)} bytes)\n")
        if args.hex:
            for i in range(0, len(data), 16):
                row = data[i:i + 16]
                sys.stdout.write(f"{i:08x}  {row.hex(' '):<47}  "
                                 + "".join(chr(b) if 32 <= b < 127 else "." for b in row) + "\n")
        else:
            sys.stdout.write(data.decode("utf-8", "replace"))
            if not data.endswith(b"\n"):
                sys.stdout.write("\n")
    return EXIT_OK


def cmd_live(args) -> int:
    from .live import LiveError, run_live
    from .report import report_json

    keylog_path = None
    if args.keylog:
        # the first key log is followed while it grows; others are loaded once
        keylog_path, args.keylog = args.keylog[0], args.keylog[1:] or None
    options = _options(args)
    console = None
    if not args.json and not args.summary:
        from rich.console import Console
        console = Console(highlight=False)

    def show(report, event: str):
        if args.json:
            d = dict(report_json(report))      # top level copied: only "event" is added
            d["event"] = event
            sys.stdout.write(json.dumps(d, ensure_ascii=False) + "\n")
        elif args.summary or event == "end":
            from .render.summary import summary_line
            prefix = "handshake " if event == "handshake" else "end       "
            sys.stdout.write(prefix + summary_line(report) + "\n")
        else:
            from .render.text import print_report
            print_report(console, report)
        sys.stdout.flush()

    announced: set[int] = set()

    def on_handshake(report):
        announced.add(report.id)
        show(report, "handshake")

    def on_close(report):
        if report.id not in announced and not args.json and not args.summary:
            show(report, "handshake")     # never completed: show the whole story once
        else:
            show(report, "end")
    try:
        stats = run_live(args.interface, bpf=args.filter, options=options, keylog_path=keylog_path,
                         write_path=args.write, count=args.count, duration=args.duration,
                         key_delay=args.key_delay, on_handshake=on_handshake, on_close=on_close)
    except LiveError as e:
        raise UserError(str(e)) from None
    drops = ""
    if stats.kernel_dropped is not None:
        drops = f", kernel received {stats.kernel_received}, dropped {stats.kernel_dropped}" \
                f" (interface {stats.interface_dropped})"
    print(f"tlsscope live: {stats.packets} packets ({stats.tcp_segments} TCP segments){drops}; "
          f"{stats.connections} TLS connections, {stats.handshakes} handshakes completed, "
          f"{stats.incomplete} incomplete" + (f"; written to {args.write}" if args.write else ""),
          file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        if args.command == "read":
            return cmd_read(args, argv)
        if args.command == "follow":
            return cmd_follow(args)
        if args.command == "live":
            return cmd_live(args)
        parser.error(f"unknown command {args.command}")
    except UserError as e:
        print(f"tlsscope: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tlsscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (e.g. `| head`): not an error worth a traceback
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
