"""TLS 1.3 without keys: the guess that a side ended the connection with an encrypted alert (its last record
has an alert's size, the peer's does not) checked against what the key log shows, on every TLS 1.3
connection over TCP in captures/ and in the corpus that has keys."""

from __future__ import annotations

import tlsscope
from conftest import CAPTURES, CORPUS, corpus_manifest, need_corpus


def _cases():
    out = [(d.name, d / "capture.pcap", [str(d / "keylog.txt")])
           for d in sorted(CAPTURES.glob("[0-9][0-9]-*")) if (d / "keylog.txt").is_file()]
    for c in corpus_manifest():
        keylogs = [str(CORPUS / k) for k in c.get("keys", ()) if not k.endswith((".key", ".pem"))]
        if keylogs or "TLS-keylog" in str(c.get("tshark")):
            out.append((c["id"], CORPUS / c["file"], keylogs))
    return out


def test_keyless_alert_guess_agrees_with_the_key_log():
    need_corpus()
    right, missed, wrong, checked = [], [], [], 0
    for name, path, keylogs in _cases():
        plain = {(r.client.ip, r.client.port): r for r in tlsscope.read(path)
                 if r.version == 0x0304 and r.transport == "tcp"}
        if not plain:
            continue
        keyed = {(r.client.ip, r.client.port): r for r in tlsscope.read(path, keylog=keylogs or None)}
        for key, r in plain.items():
            k = keyed[key]
            if not k.decryption or not k.decryption["records_decrypted"]:
                continue
            checked += 1
            guess = next((f for f in r.findings if f.code == "encrypted_alert_likely"), None)
            senders = {"client" if a.from_client else "server" for a in k.alerts if a.decrypted}
            assert (guess is None) == (r.state.alert_likely_from is None)
            if guess is not None:
                who = r.state.alert_likely_from
                (right if who in senders else wrong).append((name, key, who, senders))
            elif len(senders) == 1:
                missed.append((name, key, senders))
    assert not wrong, wrong
    assert not missed, missed
    # the revoked client of captures/05 (certificate_revoked from the server, hidden by TLS 1.3) among them
    assert ("05-revoked-client-cert", "server") in {(n, w) for n, _k, w, _s in right}
    assert len(right) >= 3 and checked >= 20


def test_the_tree_says_it_next_to_how_the_connection_ended():
    from tlsscope.render.text import render_report
    from rich.console import Console
    r = list(tlsscope.read(CAPTURES / "05-revoked-client-cert" / "capture.pcap"))[2]
    console = Console(width=200, record=True)
    console.print(render_report(r))
    assert "ended: TCP FIN (probably after an encrypted alert from the server)" in console.export_text()


def test_the_summary_line_flags_it():
    from tlsscope.render.summary import summary_line
    lines = [summary_line(r) for r in tlsscope.read(CAPTURES / "05-revoked-client-cert" / "capture.pcap")]
    assert ["encrypted-alert?=server" in ln for ln in lines] == [False, False, True]
