#!/usr/bin/python3
"""The XMPP session that scripts/record-xmpp-captures.sh records: real slixmpp clients (and
Debian's sendxmpp) talking to a real prosody over plaintext c2s.

    /usr/bin/python3 xmpp_session.py SERVER_IP PORT GAP TRUTH_OUT

Runs inside the client namespace. Every message it makes a client send is also written, with the
copies prosody is expected to deliver to the other clients, to TRUTH_OUT (a JSON list, in sending
order, with the connections); the expectation comes from the plan, not from what arrived. At the end it checks that each
client received exactly the copies planned for it, and exits 1 if not.
"""

import asyncio
import json
import logging
import sys
from collections import Counter

from slixmpp import ClientXMPP
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

SERVER, PORT, GAP, TRUTH_OUT = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
DOMAIN = "imf.test"
ROOM = "lobby@conference.imf.test"
OFFLINE = "dave@imf.test"  # registered, never online: prosody's mod_offline stores silently

logging.basicConfig(level=logging.ERROR, format="xmpp-session: %(message)s")
log = logging.getLogger("xmpp-session")
log.setLevel(logging.INFO)

truth = []  # planned messages, in order
connections = []  # every client connection: account, SASL mechanism, client


def plan(direction, account, channel, kind, body, **kw):
    e = {"dir": direction, "account": account, "channel": channel, "kind": kind, "body": body}
    e.update(kw)
    truth.append(e)


def bare(jid):
    return jid.split("/", 1)[0]


class Client:
    """One slixmpp connection; records every <message/> stanza it receives."""

    def __init__(self, jid, password, mech):
        self.jid, self.mech = jid, mech
        self.account = bare(jid)
        self.x = ClientXMPP(jid, password, sasl_mech=mech,
                            plugin_config={"feature_mechanisms": {"unencrypted_plain": True}})
        self.x.register_plugin("xep_0045")
        self.got = []
        self.ready = asyncio.Event()
        self.closed = asyncio.Event()
        self.x.add_event_handler("session_start", lambda _: self.ready.set())
        self.x.add_event_handler("disconnected", lambda _: self.closed.set())
        self.x.add_event_handler("failed_auth", lambda _: log.error("%s: authentication failed", jid))
        self.x.register_handler(Callback("all messages", StanzaPath("message"), self.got.append))
        connections.append({"account": self.account, "resource": jid.split("/", 1)[1], "mechanism": mech,
                            "client": "slixmpp"})

    async def start(self):
        self.x.connect((SERVER, PORT), force_starttls=False, disable_starttls=True)
        await asyncio.wait_for(self.ready.wait(), 15)
        self.x.send_presence()
        await asyncio.sleep(GAP)

    async def stop(self):
        self.x.disconnect()
        await asyncio.wait_for(self.closed.wait(), 15)
        await asyncio.sleep(GAP)


async def say(c, to, body, kind="chat", subject=None, extra_bodies=None, receivers=(), from_=None):
    """c sends one message with slixmpp's stanza API; plans it and the server's copies."""
    m = c.x.make_message(mto=to, mtype=kind)
    if body is not None:
        m["body"] = body
    for lang, text in (extra_bodies or {}).items():
        m[f"body|{lang}"] = text
    if subject is not None:
        m["subject"] = subject
    m.send()
    kw = {}
    if extra_bodies:
        kw["bodies"] = {"": body, **extra_bodies}
    if subject is not None:
        kw["subject"] = subject
    plan("c2s", c.account, to, kind, body, sender=c.account, **kw)
    for r in receivers:
        if kind == "groupchat":  # the room's copy is addressed to each occupant's full JID
            kw["to"] = r.jid
        plan("s2c", r.account, to, kind, body, sender=c.account, **{"from": from_ or c.jid}, **kw)
    await asyncio.sleep(GAP)


async def say_raw(c, parts, to, kind, body, receivers=(), note=None):
    """c writes a stanza it serialized itself (CDATA, character references, a split write) on its
    real stream; body is the text the stanza carries after XML unescaping."""
    for i, p in enumerate(parts):
        if i:
            await asyncio.sleep(GAP)
        c.x.send_raw(p)
    kw = {"note": note} if note else {}
    plan("c2s", c.account, to, kind, body, sender=c.account, **kw)
    for r in receivers:
        plan("s2c", r.account, to, kind, body, sender=c.account, **{"from": c.jid}, **kw)
    await asyncio.sleep(GAP)


async def sendxmpp(user, password, resource, args, text):
    """One run of Debian's sendxmpp (Perl Net::XMPP): connect, authenticate, send, close."""
    p = await asyncio.create_subprocess_exec(
        "sendxmpp", "-u", user, "-p", password, "-j", f"{SERVER}:{PORT}", "-o", DOMAIN, "-r", resource, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    connections.append({"account": f"{user}@{DOMAIN}", "resource": resource, "mechanism": "PLAIN",
                        "client": "sendxmpp", "note": "Net::XMPP picks PLAIN and sends an authzid"})
    out, _ = await asyncio.wait_for(p.communicate(text.encode()), 30)
    if p.returncode:
        raise RuntimeError(f"sendxmpp {args} exited {p.returncode}: {out.decode(errors='replace')}")
    await asyncio.sleep(GAP)


def long_body():
    lines, i = [], 0
    while sum(len(s) + 1 for s in lines) < 3000:
        lines.append(f"report line {i:03d}: throughput nominal, latency within budget, no action needed")
        i += 1
    return "\n".join(lines)


async def main():
    alice = Client(f"alice@{DOMAIN}/laptop", "alicepw", "PLAIN")
    bob = Client(f"bob@{DOMAIN}/phone", "bobpw", "SCRAM-SHA-1")
    carol = Client(f"carol@{DOMAIN}/desk", "carolpw", "PLAIN")
    for c in (alice, bob, carol):
        await c.start()

    # ---- one-to-one chat, delivered by prosody to the recipient's connection
    await say(alice, f"bob@{DOMAIN}", "hi bob, lunch at noon?", receivers=[bob])
    await say(bob, f"alice@{DOMAIN}", "sure, see you there", receivers=[alice])
    await say(alice, f"bob@{DOMAIN}", "good morning", extra_bodies={"de": "guten Morgen", "fr": "bonjour"},
              receivers=[bob])
    await say(alice, f"bob@{DOMAIN}", "numbers are in the shared folder", subject="weekly report", receivers=[bob])
    await say(alice, f"bob@{DOMAIN}", 'R&D <team> says "hi" & \'bye\'', receivers=[bob])
    await say_raw(alice, [f"<message to='bob@{DOMAIN}' type='chat' id='alice-charref'>"
                          "<body>caf&#233; &#x26; cr&#xE8;me, 5 &lt; 6 &amp;&amp; 7 &gt; 3</body></message>"],
                  f"bob@{DOMAIN}", "chat", "caf\u00e9 & cr\u00e8me, 5 < 6 && 7 > 3", receivers=[bob],
                  note="character and entity references")
    await say_raw(alice, [f"<message to='bob@{DOMAIN}' type='chat' id='alice-cdata'>"
                          "<body><![CDATA[if (a < b && c > d) { return \"<ok>\"; }]]></body></message>"],
                  f"bob@{DOMAIN}", "chat", 'if (a < b && c > d) { return "<ok>"; }', receivers=[bob],
                  note="CDATA section; prosody re-escapes it in the copy")
    await say(alice, f"carol@{DOMAIN}", "server maintenance tonight at 18:00", kind="headline", receivers=[carol])
    await say(bob, f"carol@{DOMAIN}", "please review the design doc", kind="normal", receivers=[carol])
    await say(alice, f"bob@{DOMAIN}", "alice: this one is suspicious-but-allowed, deliver it", receivers=[bob])
    await say(alice, f"bob@{DOMAIN}", long_body(), receivers=[bob])
    truth[-2]["note"] = truth[-1]["note"] = "about 3 KB, spans three TCP segments"

    # ---- sendxmpp (Net::XMPP): one connection, one chat message (it adds an empty <subject/>)
    await sendxmpp("erin", "erinpw", "cli", ["--message-type", "chat", f"bob@{DOMAIN}"],
                   "hello from sendxmpp & co\n")
    plan("c2s", f"erin@{DOMAIN}", f"bob@{DOMAIN}", "chat", "hello from sendxmpp & co\n", sender=f"erin@{DOMAIN}",
         subject="", client="sendxmpp")
    plan("s2c", bob.account, f"bob@{DOMAIN}", "chat", "hello from sendxmpp & co\n", sender=f"erin@{DOMAIN}",
         subject="", client="sendxmpp", **{"from": f"erin@{DOMAIN}/cli"})

    # ---- a MUC room: joins (prosody sends each joiner the room subject), subject change, groupchat
    occupants = []
    for c, nick in ((alice, "Alice"), (bob, "Bob"), (carol, "Carol")):
        await c.x.plugin["xep_0045"].join_muc_wait(ROOM, nick, maxstanzas=0, timeout=15)
        occupants.append((c, nick))
        plan("s2c", c.account, ROOM, "subject", "", sender=ROOM, subject="", to=c.jid, **{"from": ROOM},
             note="room subject sent on join (none set yet)")
        await asyncio.sleep(GAP)
    alice.x.plugin["xep_0045"].set_subject(ROOM, "Daily standup")
    plan("c2s", alice.account, ROOM, "subject", "Daily standup", sender=alice.account, subject="Daily standup")
    for c, _ in occupants:
        plan("s2c", c.account, ROOM, "subject", "Daily standup", sender=alice.account, subject="Daily standup",
             to=c.jid, **{"from": f"{ROOM}/Alice"})
    await asyncio.sleep(GAP)
    for c, nick, text in ((alice, "Alice", "standup in 5 minutes"), (bob, "Bob", "on my way"),
                          (carol, "Carol", "starting without me? <kidding> & all")):
        await say(c, ROOM, text, kind="groupchat", receivers=[o for o, _ in occupants], from_=f"{ROOM}/{nick}")

    # (sendxmpp's -c cannot take part: Net::XMPP joins with a bare <presence/>, which prosody 0.12
    # refuses with item-not-found, and then bounces the groupchat message)

    # ---- planted rule hits: each on a connection of its own, to an offline user (no copies)
    mallory = Client(f"mallory@{DOMAIN}/bot", "mallorypw", "PLAIN")
    await mallory.start()
    await say(mallory, OFFLINE, "hey dave, are you around?")
    await say_raw(mallory, [f"<message to='{OFFLINE}' type='chat' id='mallory-2'>"
                            "<body>claim your &#x46;REE money now</body></message>"],
                  OFFLINE, "chat", "claim your FREE money now", note="F as a character reference")
    await say(mallory, OFFLINE, "mallory: this line follows the drop and must not pass")
    await mallory.stop()

    eve = Client(f"eve@{DOMAIN}/x", "evepw", "SCRAM-SHA-1")
    await eve.start()
    await say_raw(eve, [f"<message to='{OFFLINE}' type='chat' id='eve-1'><body>reset your password at "
                        "http://secure-lo", "gin.example.test/reset today</body></message>"],
                  OFFLINE, "chat", "reset your password at http://secure-login.example.test/reset today",
                  note="stanza written in two pieces, 0.3 s apart: two TCP segments")
    await eve.stop()

    trent = Client(f"trent@{DOMAIN}/y", "trentpw", "SCRAM-SHA-1")
    await trent.start()
    await say(trent, OFFLINE, "see the attached offer", extra_bodies={"de": "kostenlos: free money for you"})
    await trent.stop()

    # ---- last clean messages, then everyone leaves
    await say(bob, f"alice@{DOMAIN}", "good night alice", receivers=[alice])
    await say(alice, f"bob@{DOMAIN}", "good night bob", receivers=[bob])
    for c in (carol, bob, alice):
        await c.stop()

    # ---- each client received exactly what was planned for it
    ok = True
    for c in (alice, bob, carol, mallory, eve, trent):
        got = Counter()
        for m in c.got:
            t = m["type"] if m["type"] in ("chat", "groupchat", "headline", "normal") else "normal"
            subj = m.xml.find("{jabber:client}subject")
            if t == "groupchat" and subj is not None and m.xml.find("{jabber:client}body") is None:
                got[("subject", m["subject"])] += 1
            else:
                got[(t, m["body"])] += 1
        want = Counter((e["kind"], e["body"]) for e in truth if e["dir"] == "s2c" and e["account"] == c.account)
        if got != want:
            ok = False
            log.error("%s received differs from the plan: missing %s, extra %s", c.account,
                      dict(want - got), dict(got - want))
    with open(TRUTH_OUT, "w") as f:
        json.dump({"messages": truth, "connections": connections}, f, indent=1, ensure_ascii=False)
    log.info("%d messages planned (%d c2s, %d s2c); clients received %s", len(truth),
             sum(e["dir"] == "c2s" for e in truth), sum(e["dir"] == "s2c" for e in truth),
             "exactly those" if ok else "OTHER ones")
    return 0 if ok else 1


sys.exit(asyncio.run(main()))
