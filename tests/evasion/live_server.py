#!/usr/bin/python3
"""Server application of the live evasion test (run in the server namespace by
evasion_live_test.py): a plain TCP listener on each ADDR:PORT that records every byte each
connection's application reads, as JSON lines in LOG. No SO_OOBINLINE: urgent bytes stay out of
band, as in a normal server. The real Linux receiver decides what counts.

    live_server.py LOG PORT ADDR [ADDR ...]

Lines: {"ev":"listening"}, {"ev":"accept","peer":[ip,port]}, {"ev":"data","peer":..,"hex":..},
{"ev":"eof","peer":..}, {"ev":"late","peer":..,"hex":..} (read after EOF), {"ev":"reset","peer":..}.
A connection that read EOF stays open and is polled for late data (a stack delivering bytes beyond
a FIN); the server never writes.
"""

import json
import select
import socket
import sys


def main(argv):
    log = open(argv[1], "a", buffering=1)
    port = int(argv[2])

    def emit(ev, peer=None, data=None):
        rec = {"ev": ev}
        if peer is not None:
            rec["peer"] = list(peer[:2])
        if data is not None:
            rec["hex"] = data.hex()
        log.write(json.dumps(rec) + "\n")

    listeners = []
    for addr in argv[3:]:
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        s.listen(512)
        s.setblocking(False)
        listeners.append(s)
    emit("listening")
    conns, eof = {}, {}
    while True:
        r, _, _ = select.select(listeners + list(conns), [], [], 0.05)
        for s in r:
            if s in listeners:
                try:
                    c, peer = s.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                conns[c] = peer
                emit("accept", peer)
                continue
            peer = conns[s]
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                emit("reset", peer)
                del conns[s]
                s.close()
                continue
            if data:
                emit("data", peer, data)
            else:
                emit("eof", peer)
                del conns[s]
                eof[s] = peer
        for s, peer in list(eof.items()):
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                emit("reset", peer)
                del eof[s]
                s.close()
                continue
            if data:
                emit("late", peer, data)


if __name__ == "__main__":
    main(sys.argv)
