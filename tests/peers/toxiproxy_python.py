"""Drives the built-in fault proxy with toxiproxy-python (PyPI 0.1.1), a client nobody here
wrote, through every endpoint it offers, and checks each fault on real bytes through a
loopback echo server.

Run by tests/proxy_peers.rs:  python3 toxiproxy_python.py --api HOST:PORT --echo HOST:PORT
Prints "ok <step>" per step; exits non-zero with the failing assertion otherwise. Every socket
has a timeout, so nothing here can hang.
"""

import argparse
import json
import socket
import sys
import time

from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

IO_TIMEOUT = 3.0


def ok(step):
    print("ok " + step, flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def addr(listen):
    host, port = listen.rsplit(":", 1)
    if host in ("0.0.0.0", "[::]", ""):
        host = "127.0.0.1"
    return host, int(port)


def connect(listen):
    s = socket.create_connection(addr(listen), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s, n):
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def round_trip(s, payload):
    """Seconds for payload to go through the proxy to the echo server and back."""
    t = time.monotonic()
    s.sendall(payload)
    back = recv_exactly(s, len(payload))
    took = time.monotonic() - t
    check(back == payload, "echo returned %d of %d bytes" % (len(back), len(payload)))
    return took


def read_until_end(s, limit):
    """Reads until EOF, a reset or `limit` seconds: (bytes, 'eof' | 'reset' | 'open', secs)."""
    s.settimeout(limit)
    t = time.monotonic()
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return got, "eof", time.monotonic() - t
            got += chunk
    except ConnectionResetError:
        return got, "reset", time.monotonic() - t
    except socket.timeout:
        return got, "open", time.monotonic() - t


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", required=True)
    parser.add_argument("--echo", required=True)
    args = parser.parse_args()
    host, port = args.api.rsplit(":", 1)
    echo = args.echo

    server = Toxiproxy()
    server.update_api_consumer(host, int(port))

    check(server.running() is True, "running() is not True")
    version = json.loads(server.version())
    check(version["version"].startswith("2."), "version %r" % version)
    ok("version")

    proxy = server.create(upstream=echo, name="echo")
    check(proxy.enabled is True, "created disabled")
    check(proxy.upstream == echo, "upstream %r" % proxy.upstream)
    check(not proxy.listen.endswith(":0"), "listen %r" % proxy.listen)
    s = connect(proxy.listen)
    check(round_trip(s, b"hello through the proxy") < 0.2, "slow without toxics")
    try:
        server.create(upstream=echo, name="echo")
        check(False, "duplicate create did not raise ProxyExists")
    except ProxyExists:
        pass
    ok("create")

    check(set(server.proxies()) == {"echo"}, "proxies() %r" % server.proxies())
    got = server.get_proxy("echo")
    check(got.listen == proxy.listen and got.enabled, "get_proxy %r" % vars(got))
    check(server.get_proxy("nope") is None, "get_proxy of a missing proxy")
    try:
        APIConsumer.get("/proxies/nope")
        check(False, "GET of a missing proxy did not raise NotFound")
    except NotFound:
        pass
    ok("list_get")

    # latency: N ms injected shows up as >= N ms on a real socket.
    proxy.add_toxic(type="latency", attributes={"latency": 100})
    proxy.add_toxic(type="latency", name="lag_up", stream="upstream",
                    attributes={"latency": 50, "jitter": 0})
    toxics = proxy.toxics()
    check(set(toxics) == {"latency_downstream", "lag_up"}, "toxics %r" % list(toxics))
    check(toxics["latency_downstream"].attributes["latency"] == 100, "latency attribute")
    check(proxy.get_toxic("lag_up").stream == "upstream", "lag_up stream")
    rtt = round_trip(s, b"x" * 100)
    check(0.150 <= rtt < 0.5, "150 ms of latency gave a %.3f s round trip" % rtt)
    check(proxy.destroy_toxic("lag_up") is True, "destroy_toxic")
    rtt = round_trip(s, b"y" * 100)
    check(0.100 <= rtt < 0.15, "100 ms of latency gave a %.3f s round trip" % rtt)
    proxy.destroy_toxic("latency_downstream")
    check(round_trip(s, b"z" * 100) < 0.05, "latency not removed")
    # toxiproxy-python sends "attributes": {} by default: Toxiproxy's zero values.
    proxy.add_toxic(type="latency")
    check(proxy.get_toxic("latency_downstream").attributes == {"latency": 0, "jitter": 0},
          "default latency attributes")
    check(round_trip(s, b"d" * 10) < 0.05, "a default latency toxic added latency")
    proxy.destroy_toxic("latency_downstream")
    ok("latency")

    # timeout: closes a silent connection after its timeout; 0 (the default) black-holes.
    proxy.add_toxic(type="timeout", attributes={"timeout": 200})
    c = connect(proxy.listen)
    c.sendall(b"ping")
    got, end, took = read_until_end(c, 2.0)
    check(got == b"" and end == "eof" and 0.19 <= took < 1.0,
          "timeout 200: %r %s after %.3f s" % (got, end, took))
    proxy.destroy_toxic("timeout_downstream")
    proxy.add_toxic(type="timeout")
    c = connect(proxy.listen)
    c.sendall(b"ping")
    got, end, _ = read_until_end(c, 0.3)
    check(got == b"" and end == "open", "default timeout: %r %s" % (got, end))
    proxy.destroy_toxic("timeout_downstream")
    got, end, _ = read_until_end(c, 2.0)
    check(end in ("eof", "reset"), "a healed black hole kept its connection (%s)" % end)
    ok("timeout")

    # reset_peer: the connection is reset (RST) after its timeout.
    proxy.add_toxic(type="reset_peer", attributes={"timeout": 50})
    c = connect(proxy.listen)
    c.sendall(b"trigger")
    got, end, took = read_until_end(c, 2.0)
    check(got == b"" and end == "reset" and took >= 0.045,
          "reset_peer: %r %s after %.3f s" % (got, end, took))
    proxy.destroy_toxic("reset_peer_downstream")
    ok("reset_peer")

    # bandwidth: 100 KB/s downstream; 30 KB takes at least 0.3 s.
    proxy.add_toxic(type="bandwidth", attributes={"rate": 100})
    c = connect(proxy.listen)
    c.settimeout(IO_TIMEOUT)
    took = round_trip(c, b"b" * 30000)
    check(0.25 <= took < 1.5, "30 KB at 100 KB/s took %.3f s" % took)
    proxy.destroy_toxic("bandwidth_downstream")
    ok("bandwidth")

    # slow_close: the echo server's close reaches us 200 ms late.
    proxy.add_toxic(type="slow_close", attributes={"delay": 200})
    c = connect(proxy.listen)
    c.sendall(b"bye")
    c.shutdown(socket.SHUT_WR)
    got, end, took = read_until_end(c, 2.0)
    check(got == b"bye" and end == "eof" and took >= 0.19,
          "slow_close: %r %s after %.3f s" % (got, end, took))
    proxy.destroy_toxic("slow_close_downstream")
    ok("slow_close")

    # slicer: 2000 bytes come back in ~10-byte slices 1 ms apart.
    proxy.add_toxic(type="slicer", attributes={"average_size": 10, "size_variation": 5,
                                               "delay": 1000})
    c = connect(proxy.listen)
    c.settimeout(IO_TIMEOUT)
    payload = bytes(i % 251 for i in range(2000))
    t = time.monotonic()
    c.sendall(payload)
    got, reads = b"", 0
    while len(got) < len(payload):
        chunk = c.recv(65536)
        check(chunk, "closed mid-slice")
        got += chunk
        reads += 1
    took = time.monotonic() - t
    check(got == payload, "slicer lost or reordered bytes")
    check(reads >= 20 and took >= 0.1, "slicer: %d reads in %.3f s" % (reads, took))
    proxy.destroy_toxic("slicer_downstream")
    ok("slicer")

    # limit_data: exactly 500 bytes come back, then the connection closes.
    proxy.add_toxic(type="limit_data", attributes={"bytes": 500})
    c = connect(proxy.listen)
    c.sendall(b"L" * 1000)
    got, end, _ = read_until_end(c, 2.0)
    check(got == b"L" * 500 and end == "eof", "limit_data: %d bytes, %s" % (len(got), end))
    proxy.destroy_toxic("limit_data_downstream")
    ok("limit_data")

    # Bad toxics raise InvalidToxic (a 400).
    for bad in ({"type": "latency", "attributes": {"latency": -1}},
                {"type": "latency", "attributes": {"latency": 2 ** 64}},
                {"type": "nope"}):
        try:
            proxy.add_toxic(**bad)
            check(False, "%r was accepted" % bad)
        except InvalidToxic:
            pass
    check(proxy.toxics() == {}, "a refused toxic was kept")
    try:
        proxy.destroy_toxic("nope")
        check(False, "destroying a missing toxic did not raise NotFound")
    except NotFound:
        pass
    ok("invalid_toxic")

    # disable / enable / down(): a disabled proxy refuses connections.
    s.close()
    proxy.disable()
    check(server.get_proxy("echo").enabled is False, "disable")
    try:
        connect(proxy.listen).close()
        check(False, "a disabled proxy accepted a connection")
    except ConnectionRefusedError:
        pass
    proxy.enable()
    check(server.get_proxy("echo").enabled is True, "enable")
    check(round_trip(connect(proxy.listen), b"back") < 0.2, "re-enabled proxy")
    with proxy.down():
        try:
            connect(proxy.listen).close()
            check(False, "a proxy that is down() accepted a connection")
        except ConnectionRefusedError:
            pass
    check(round_trip(connect(proxy.listen), b"up again") < 0.2, "after down()")
    ok("enable_disable")

    # reset: every proxy enabled, every toxic gone.
    proxy.add_toxic(type="latency", attributes={"latency": 300})
    proxy.disable()
    check(server.reset() is True, "reset")
    again = server.get_proxy("echo")
    check(again.enabled is True and proxy.toxics() == {}, "reset left %r" % vars(again))
    check(round_trip(connect(proxy.listen), b"reset") < 0.2, "after reset")
    ok("reset")

    # populate (client-side in toxiproxy-python: create what is missing or changed).
    made = server.populate([
        {"name": "p1", "upstream": echo, "listen": "127.0.0.1:0"},
        {"name": "p2", "upstream": echo, "listen": "127.0.0.1:0"},
    ])
    check(sorted(p.name for p in made) == ["p1", "p2"], "populate made %r" % made)
    for p in made:
        check(round_trip(connect(p.listen), b"populated") < 0.2, "populated " + p.name)
    p1 = server.get_proxy("p1")
    kept = server.populate([{"name": "p1", "upstream": echo, "listen": p1.listen}])
    check(kept == [] and server.get_proxy("p1").listen == p1.listen, "populate again")
    ok("populate")

    # destroy and destroy_all.
    check(server.destroy(server.get_proxy("p1")) is True, "destroy")
    check(server.get_proxy("p1") is None, "destroyed proxy still listed")
    try:
        connect(p1.listen).close()
        check(False, "a destroyed proxy accepted a connection")
    except ConnectionRefusedError:
        pass
    server.destroy_all()
    check(server.proxies() == {}, "destroy_all left %r" % list(server.proxies()))
    ok("destroy")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report, then fail
        import traceback

        traceback.print_exc()
        print("FAILED: %s" % e, file=sys.stderr, flush=True)
        sys.exit(1)
