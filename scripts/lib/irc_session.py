#!/usr/bin/python3
"""The IRC session that scripts/record-irc-captures.sh records: Debian's ii (alice) and small
socket clients written here (bob, carol and the planted senders) talking to a real ngircd.

    /usr/bin/python3 irc_session.py SERVER_IP PORT GAP II_DIR TRUTH_OUT

Runs inside the client namespace. ii must already run with -i II_DIR (this script drives it
through its fifos). Every message it makes a client send is written, with the copies ngircd is
expected to relay, to TRUTH_OUT (a JSON list in sending order); the expectation comes from the plan,
not from what arrived. At the end it checks that each socket client received exactly the relays
planned for it, and exits 1 if not.
"""

import json
import os
import socket
import sys
import threading
import time
from collections import Counter

SERVER, PORT, GAP, II_DIR, TRUTH_OUT = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
PENALTY = 2.5  # ngircd 26 holds a client's next command 2 s after an unknown command

truth = []
connections = []  # every client connection: its nicks in order, client program, line ends, CAP


def log(msg):
    print(f"irc-session: {msg}", file=sys.stderr)


def plan(direction, account, channel, kind, body, **kw):
    e = {"dir": direction, "account": account, "channel": channel, "kind": kind, "body": body}
    e.update(kw)
    truth.append(e)


def wait_for(pred, what, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise SystemExit(f"irc-session: timed out waiting for {what}")


class Sock:
    """A client made of a socket: registers, then sends each line it is told to (eol CRLF or LF)."""

    def __init__(self, nick, eol="\r\n", cap=False, real="imf test"):
        self.nick, self.eol = nick, eol
        self.conn = {"nicks": [nick], "client": "socket", "eol": "CRLF" if eol == "\r\n" else "LF"}
        if cap:
            self.conn["cap"] = ["multi-prefix"]
        connections.append(self.conn)
        self.s = socket.create_connection((SERVER, PORT))
        self.buf = b""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        if cap:  # IRCv3 capability negotiation: ngircd 26 offers multi-prefix only (no sasl, no message-tags)
            self.raw(f"CAP LS 302{eol}")
            wait_for(lambda: b" CAP * LS " in self.buf, f"{nick}: CAP LS")
            self.raw(f"CAP REQ :multi-prefix{eol}")
            wait_for(lambda: b" CAP * ACK " in self.buf, f"{nick}: CAP ACK")
            self.raw(f"NICK {nick}{eol}USER {nick} 0 * :{real}{eol}CAP END{eol}")
        else:
            self.raw(f"NICK {nick}{eol}USER {nick} 0 * :{real}{eol}")
        wait_for(lambda: b" 376 " in self.buf or b" 422 " in self.buf, f"{nick}: registration")
        time.sleep(GAP)

    def _read(self):
        while True:
            d = self.s.recv(65536)
            if not d:
                return
            with self.lock:
                self.buf += d

    def raw(self, text):
        self.s.sendall(text.encode())

    def send(self, line, gap=True):
        self.raw(line + self.eol)
        if gap:
            time.sleep(GAP)

    def join(self, channel):
        """JOIN, and wait for the server's echo: ngircd may hold a new client's first commands a moment"""
        self.raw(f"JOIN {channel}{self.eol}")
        wait_for(lambda: f" JOIN :{channel}\r\n".encode() in self.buf, f"{self.nick}: JOIN {channel}")
        time.sleep(GAP)

    def received(self):
        """(command, target, text) of every relayed message this connection received"""
        out = []
        for line in self.buf.split(b"\r\n"):
            parts = line.decode().split(" ")
            if len(parts) < 3 or not parts[0].startswith(":") or "!" not in parts[0]:
                continue
            cmd = parts[1]
            if cmd not in ("PRIVMSG", "NOTICE", "TOPIC", "PART", "QUIT"):
                continue
            text = line.decode().split(" :", 1)[1] if " :" in line.decode() else ""
            if cmd == "PRIVMSG" and text.startswith("\x01ACTION "):
                cmd, text = "ACTION", text[8:-1]
            out.append((cmd, text))
        return out

    def close(self):
        self.s.close()


class Ii:
    """Debian's ii, driven through its fifos."""

    def __init__(self, nick):
        self.nick = nick
        self.conn = {"nicks": [nick], "client": "ii", "eol": "CRLF"}
        connections.append(self.conn)
        self.dir = os.path.join(II_DIR, SERVER)
        wait_for(lambda: os.path.exists(os.path.join(self.dir, "out")) and
                 "End of MOTD command" in open(os.path.join(self.dir, "out")).read(), "ii: registration")
        time.sleep(GAP)

    def write(self, where, line):
        path = os.path.join(self.dir, where, "in") if where else os.path.join(self.dir, "in")
        wait_for(lambda: os.path.exists(path), f"ii fifo {path}")
        with open(path, "w") as f:
            f.write(line + "\n")
        time.sleep(GAP)


def relay(kind, sender, channel, body, receivers, **kw):
    for r in receivers:
        plan("s2c", r.nick, channel, kind, body, **{"from": sender}, **kw)


def main():
    alice = Ii("alice")
    bob = Sock("bob", cap=True, real="Bob")
    carol = Sock("carol", eol="\n", real="Carol (LF-only lines)")
    L = "#lobby"

    alice.write("", f"/j {L}")
    wait_for(lambda: os.path.exists(os.path.join(alice.dir, L, "in")), "ii: join")
    bob.join(L)
    carol.join(L)

    # ---- channel and private messages, relayed by ngircd to the other members / the target
    alice.write(L, "hello everyone")
    plan("c2s", "alice", L, "PRIVMSG", "hello everyone", client="ii")
    relay("PRIVMSG", "alice", L, "hello everyone", [bob, carol])
    bob.send(f"PRIVMSG {L} :hi alice, hi carol")
    plan("c2s", "bob", L, "PRIVMSG", "hi alice, hi carol")
    relay("PRIVMSG", "bob", L, "hi alice, hi carol", [alice, carol])
    carol.send(f"PRIVMSG {L} :morning all, my lines end in LF only")
    plan("c2s", "carol", L, "PRIVMSG", "morning all, my lines end in LF only", note="line ends in LF, not CRLF")
    relay("PRIVMSG", "carol", L, "morning all, my lines end in LF only", [alice, bob])
    alice.write("", "/j bob hi bob, a private question")
    plan("c2s", "alice", "bob", "PRIVMSG", "hi bob, a private question", client="ii")
    relay("PRIVMSG", "alice", "bob", "hi bob, a private question", [bob])
    bob.send("PRIVMSG alice :sure, ask away")
    plan("c2s", "bob", "alice", "PRIVMSG", "sure, ask away")
    relay("PRIVMSG", "bob", "alice", "sure, ask away", [alice])
    bob.send("NOTICE alice :this is a notice")
    plan("c2s", "bob", "alice", "NOTICE", "this is a notice")
    relay("NOTICE", "bob", "alice", "this is a notice", [alice])
    carol.send(f"NOTICE {L} :channel notice from carol")
    plan("c2s", "carol", L, "NOTICE", "channel notice from carol")
    relay("NOTICE", "carol", L, "channel notice from carol", [alice, bob])
    alice.write(L, "\x01ACTION waves at everyone\x01")
    plan("c2s", "alice", L, "ACTION", "waves at everyone", client="ii", note="CTCP ACTION inside PRIVMSG")
    relay("ACTION", "alice", L, "waves at everyone", [bob, carol], note="CTCP ACTION inside PRIVMSG")
    alice.write(L, "/t Daily standup at 10:00")
    plan("c2s", "alice", L, "TOPIC", "Daily standup at 10:00", client="ii")
    relay("TOPIC", "alice", L, "Daily standup at 10:00", [alice, bob, carol], note="ngircd echoes it to the setter too")

    # ---- a nick change: from here on alice's connection is 'alicia'
    alice.write("", "/n alicia")
    alice.nick = "alicia"
    alice.conn["nicks"].append("alicia")
    alice.write(L, "alicia here, same person, new nick")
    plan("c2s", "alicia", L, "PRIVMSG", "alicia here, same person, new nick", client="ii")
    relay("PRIVMSG", "alicia", L, "alicia here, same person, new nick", [bob, carol])

    # ---- one line written in two pieces: two TCP segments
    bob.raw(f"PRIVMSG {L} :this line arrives in two pie")
    time.sleep(GAP)
    bob.send("ces")
    plan("c2s", "bob", L, "PRIVMSG", "this line arrives in two pieces", note="written in two pieces, 0.3 s apart")
    relay("PRIVMSG", "bob", L, "this line arrives in two pieces", [alice, carol])

    carol.send(f"PRIVMSG {L} :carol: this one is suspicious-but-allowed, deliver it")
    plan("c2s", "carol", L, "PRIVMSG", "carol: this one is suspicious-but-allowed, deliver it")
    relay("PRIVMSG", "carol", L, "carol: this one is suspicious-but-allowed, deliver it", [alice, bob])

    # ---- IRCv3 message tags: ngircd 26 does not know them, answers 421 and relays nothing
    carol.send(f"@+draft/reply=abc123;+example.org/x=y PRIVMSG {L} :tagged hello", gap=False)
    plan("c2s", "carol", L, "PRIVMSG", "tagged hello", tags={"+draft/reply": "abc123", "+example.org/x": "y"},
         note="IRCv3 message tags; ngircd 26.1 answers 421 Unknown command, nothing is relayed")
    time.sleep(PENALTY)

    carol.send(f"PART {L} :gotta go")
    plan("c2s", "carol", L, "PART", "gotta go")
    relay("PART", "carol", L, "gotta go", [alice, bob, carol], note="ngircd echoes it to the leaver too")

    # ---- planted rule hits, each on a connection of its own where nobody else listens
    mallory = Sock("mallory", real="Mallory")
    mallory.join("#market")
    mallory.send("PRIVMSG #market :hey, anyone here?")
    plan("c2s", "mallory", "#market", "PRIVMSG", "hey, anyone here?")
    mallory.send("PRIVMSG #market :\x01ACTION offers FREE MONEY to everyone\x01")
    plan("c2s", "mallory", "#market", "ACTION", "offers FREE MONEY to everyone", note="CTCP ACTION inside PRIVMSG")
    mallory.send("PRIVMSG #market :mallory: this line follows the drop and must not pass")
    plan("c2s", "mallory", "#market", "PRIVMSG", "mallory: this line follows the drop and must not pass")
    mallory.send("QUIT :bye")
    plan("c2s", "mallory", "", "QUIT", "bye")

    eve = Sock("eve", real="Eve")
    eve.raw("PRIVMSG nobody :reset your password at http://secure-lo")
    time.sleep(GAP)
    eve.send("gin.example.test/reset today")
    plan("c2s", "eve", "nobody", "PRIVMSG", "reset your password at http://secure-login.example.test/reset today",
         note="written in two pieces, 0.3 s apart; no such nick (401)")
    eve.send("QUIT :later")
    plan("c2s", "eve", "", "QUIT", "later")

    trent = Sock("trent", real="Trent")
    trent.join("#deals")
    trent.send("TOPIC #deals :free money inside, ask me")
    plan("c2s", "trent", "#deals", "TOPIC", "free money inside, ask me")
    relay("TOPIC", "trent", "#deals", "free money inside, ask me", [trent], note="ngircd echoes it to the setter")
    trent.send("QUIT :gone")
    plan("c2s", "trent", "", "QUIT", "gone")

    # ---- QUIT with a message: ngircd relays it in double quotes to those sharing a channel
    bob.send("QUIT :see you tomorrow")
    plan("c2s", "bob", "", "QUIT", "see you tomorrow")
    relay("QUIT", "bob", "", '"see you tomorrow"', [alice], note="ngircd quotes the relayed reason")
    carol.send("QUIT :carol out")
    plan("c2s", "carol", "", "QUIT", "carol out")
    alice.write("", "/q bye all")
    plan("c2s", "alicia", "", "QUIT", "bye all", client="ii")
    time.sleep(GAP)

    # ---- each socket client received exactly the relays planned for it
    ok = True
    for c in (bob, carol, mallory, eve, trent):
        got = Counter(c.received())
        want = Counter((e["kind"], e["body"]) for e in truth if e["dir"] == "s2c" and e["account"] == c.nick)
        if got != want:
            ok = False
            log(f"{c.nick} received differs from the plan: missing {dict(want - got)}, extra {dict(got - want)}")
        c.close()
    with open(TRUTH_OUT, "w") as f:
        json.dump({"messages": truth, "connections": connections}, f, indent=1)
    log(f"{len(truth)} messages planned ({sum(e['dir'] == 'c2s' for e in truth)} c2s, "
        f"{sum(e['dir'] == 's2c' for e in truth)} s2c); socket clients received {'exactly those' if ok else 'OTHER ones'}")
    return 0 if ok else 1


sys.exit(main())
