"""Helpers the live tests share: commands in network namespaces, bounded waits, log tails.

Imported by live_af_packet_test.py and accounts_live_test.py from this directory.
"""

import os
import signal
import subprocess
import time

# `ping` (iputils) is not installed on the test machines: one ICMP echo over a raw socket,
# run inside a namespace with `ip netns exec NS /usr/bin/python3 -c PING_SNIPPET DST`.
PING_SNIPPET = r"""
import os, select, socket, struct, sys, time
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
ident = os.getpid() & 0xFFFF
def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xFFFF)
    t += t >> 16
    return ~t & 0xFFFF
body = b"imflive-ping"
hdr = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
s.sendto(hdr[:2] + struct.pack("!H", csum(hdr + body)) + hdr[4:] + body, (dst, 0))
end = time.monotonic() + 1.0
while time.monotonic() < end:
    r, _, _ = select.select([s], [], [], max(0.0, end - time.monotonic()))
    if not r:
        break
    pkt, addr = s.recvfrom(2048)
    ihl = (pkt[0] & 15) * 4
    typ, _, _, rid, _ = struct.unpack("!BBHHH", pkt[ihl:ihl + 8])
    if addr[0] == dst and typ == 0 and rid == ident:
        sys.exit(0)
sys.exit(1)
"""


def run(cmd, check_rc=True, timeout=30, **kw):
    """Runs a command (list); returns the CompletedProcess with text output. Raises on a non-zero
    exit status when check_rc."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}\nstdout: {p.stdout}\n"
                           f"stderr: {p.stderr}")
    return p


def nsrun(ns, cmd, **kw):
    return run(["ip", "netns", "exec", ns] + cmd, **kw)


def ping(ns, dst):
    return nsrun(ns, ["/usr/bin/python3", "-c", PING_SNIPPET, dst], check_rc=False).returncode == 0


def wait_for(pred, timeout, interval=0.1):
    """Polls pred until it returns something true or timeout seconds passed; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
    except OSError as e:
        return f"<{path}: {e}>"


def stop_proc(p, sig, timeout=5):
    """Signals a process and waits for it; kills it if it outlives timeout. Its exit status."""
    if p is None:
        return None
    if p.poll() is not None:
        return p.returncode
    try:
        p.send_signal(sig)
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait(timeout=5)


class Wire:
    """The test wire: namespaces client | middle | broker joined by veth pairs c0-m0 and m1-b0
    (the appliance bridges m0 and m1 in the middle), MTU 1500, IPv6 off."""

    def __init__(self, client, middle, broker, client_ip, broker_ip):
        self.client, self.middle, self.broker = client, middle, broker
        self.client_ip, self.broker_ip = client_ip, broker_ip
        self.created = []

    def setup(self):
        for ns in (self.client, self.middle, self.broker):
            run(["ip", "netns", "add", ns])
            self.created.append(ns)
            nsrun(ns, ["ip", "link", "set", "lo", "up"])
        nsrun(self.client, ["ip", "link", "add", "name", "c0", "type", "veth", "peer", "name", "m0", "netns",
                            self.middle])
        nsrun(self.middle, ["ip", "link", "add", "name", "m1", "type", "veth", "peer", "name", "b0", "netns",
                            self.broker])
        for ns, dev in ((self.client, "c0"), (self.middle, "m0"), (self.middle, "m1"), (self.broker, "b0")):
            nsrun(ns, ["ip", "link", "set", dev, "mtu", "1500"])
            # TX checksum offload off or TCP through the appliance fails (af_packet sees
            # CHECKSUM_PARTIAL frames); GSO/GRO off so it sees wire-sized frames.
            nsrun(ns, ["ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"])
            nsrun(ns, ["ip", "link", "set", dev, "up"])
        # No IPv6 chatter (router solicitations, DAD) on the test wire.
        for ns in self.created:
            nsrun(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"], check_rc=False)
        nsrun(self.client, ["ip", "addr", "add", f"{self.client_ip}/24", "dev", "c0"])
        nsrun(self.broker, ["ip", "addr", "add", f"{self.broker_ip}/24", "dev", "b0"])

    def teardown(self):
        delete_namespaces(self.created)
        self.created = []


def delete_namespaces(names):
    """Deletes our network namespaces, killing processes left in them first (e.g. orphans of a
    killed `ip netns exec`)."""
    for ns in names:
        for pid in run(["ip", "netns", "pids", ns], check_rc=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        run(["ip", "netns", "del", ns], check_rc=False)
