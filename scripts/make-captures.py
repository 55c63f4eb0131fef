#!/usr/bin/env python3
"""Writes the corpus's capture files (programs/captures/), byte for byte reproducibly:
mixed.pcapng (pcapng: an IPv4 DNS query, an IPv4 TCP SYN, an IPv6 UDP datagram) and
icmp.pcap (classic pcap: two IPv4 ICMP echo requests). Every header is well formed (lengths
and IPv4 checksums computed), timestamps are fixed. Rerun after editing; commit the files."""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "programs", "captures")
ETH = bytes.fromhex("020000000002" "020000000001")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(proto, payload, src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02"):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, src, dst)
    header = header[:10] + struct.pack("!H", csum(header)) + header[12:]
    return ETH + b"\x08\x00" + header + payload


def ipv6(next_header, payload):
    header = struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, 64,
                         bytes(15) + b"\x01", bytes(15) + b"\x02")
    return ETH + b"\x86\xdd" + header + payload


def udp(sport, dport, data):
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def tcp_syn(sport, dport):
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0)


def icmp_echo(ident, seq):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"abcdefgh"
    return body[:2] + struct.pack("!H", csum(body)) + body[4:]


def block(kind, body):
    body += bytes(-len(body) % 4)
    return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def write_pcapng(path, frames):
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 65535))  # Ethernet
    for i, frame in enumerate(frames):
        ts = 1_700_000_000_000_000 + i
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + frame)
    open(path, "wb").write(out)


def write_pcap(path, frames):
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, frame in enumerate(frames):
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame
    open(path, "wb").write(out)


os.makedirs(HERE, exist_ok=True)
dns = bytes.fromhex("12340100000100000000000003777777076578616d706c6503636f6d0000010001")
write_pcapng(os.path.join(HERE, "mixed.pcapng"), [
    ipv4(17, udp(33000, 53, dns)),
    ipv4(6, tcp_syn(40000, 80)),
    ipv6(17, udp(5353, 5353, b"mdns")),
])
write_pcap(os.path.join(HERE, "icmp.pcap"), [
    ipv4(1, icmp_echo(0x4242, 1)),
    ipv4(1, icmp_echo(0x4242, 2)),
])
