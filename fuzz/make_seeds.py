#!/usr/bin/env python3
"""Writes the seed corpus in fuzz/seeds/: short, valid SFTP sessions a real client might send.

sftp_packet seeds are client streams; sftp_session seeds are one option byte (see
fuzz_targets/sftp_session.rs) followed by the stream after INIT (the target sends INIT itself).
Handles are numbered "1", "2", ... in the order the server opens them.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def u32(n):
    return struct.pack(">I", n)


def u64(n):
    return struct.pack(">Q", n)


def s(text):
    data = text if isinstance(text, bytes) else text.encode()
    return u32(len(data)) + data


def attrs(size=None, mtime=None, perms=None):
    flags, body = 0, b""
    if size is not None:
        flags |= 1
        body += u64(size)
    if perms is not None:
        flags |= 4
        body += u32(perms)
    if mtime is not None:
        flags |= 8
        body += u32(mtime) + u32(mtime)
    return u32(flags) + body


def pkt(kind, *fields):
    body = bytes([kind]) + b"".join(fields)
    return u32(len(body)) + body


INIT = pkt(1, u32(3))
READ, WRITE, CREAT, TRUNC, EXCL, APPEND = 1, 2, 8, 16, 32, 4

sessions = {
    "list": [
        pkt(16, u32(1), s(".")),
        pkt(11, u32(2), s("/d")),
        pkt(12, u32(3), s("1")),
        pkt(12, u32(4), s("1")),
        pkt(12, u32(5), s("1")),
        pkt(4, u32(6), s("1")),
    ],
    "read": [
        pkt(3, u32(1), s("/d/f.txt"), u32(READ), attrs()),
        pkt(5, u32(2), s("1"), u64(0), u32(32768)),
        pkt(5, u32(3), s("1"), u64(13), u32(32768)),
        pkt(8, u32(4), s("1")),
        pkt(4, u32(5), s("1")),
        pkt(5, u32(6), s("1"), u64(0), u32(10)),
    ],
    "upload": [
        pkt(3, u32(1), s("/d/new.bin"), u32(WRITE | CREAT | TRUNC), attrs(perms=0o644)),
        pkt(6, u32(2), s("1"), u64(0), s(b"abcdefgh")),
        pkt(6, u32(3), s("1"), u64(8), s(b"ijkl")),
        pkt(10, u32(4), s("1"), attrs(size=12, mtime=1_650_000_000)),
        pkt(200, u32(5), s("fsync@openssh.com"), s("1")),
        pkt(4, u32(6), s("1")),
        pkt(9, u32(7), s("/d/new.bin"), attrs(mtime=1_650_000_000)),
        pkt(17, u32(8), s("/d/new.bin")),
    ],
    "resume": [
        pkt(3, u32(1), s("/big"), u32(WRITE | APPEND), attrs()),
        pkt(3, u32(2), s("/x"), u32(WRITE | CREAT | EXCL), attrs()),
        pkt(6, u32(3), s("1"), u64(100), s(b"gap")),
        pkt(4, u32(4), s("1")),
    ],
    "paths": [
        pkt(14, u32(1), s("/m"), attrs()),
        pkt(18, u32(2), s("/m"), s("/n")),
        pkt(200, u32(3), s("posix-rename@openssh.com"), s("/d/f.txt"), s("/g")),
        pkt(7, u32(4), s("/../../g")),
        pkt(13, u32(5), s("/g")),
        pkt(15, u32(6), s("/n")),
        pkt(15, u32(7), s("/d")),
        pkt(19, u32(8), s("/d")),
        pkt(20, u32(9), s("/l"), s("/d")),
    ],
    "extensions": [
        pkt(200, u32(1), s("limits@openssh.com")),
        pkt(200, u32(2), s("statvfs@openssh.com"), s("/")),
        pkt(200, u32(3), s("copy-data"), s("1"), u64(0), u64(0), s("2"), u64(0)),
        pkt(99, u32(4), b"junk"),
        pkt(102, u32(5), s("x")),
    ],
}

OPTIONS = 0b0111_1001  # INIT first, 128 in flight, 256 handles
for name, packets in sessions.items():
    stream = b"".join(packets)
    with open(os.path.join(HERE, "seeds", "sftp_packet", name), "wb") as f:
        f.write(INIT + stream)
    with open(os.path.join(HERE, "seeds", "sftp_session", name), "wb") as f:
        f.write(bytes([OPTIONS]) + stream)
# Tight limits and failing, slow commits.
tight = 0b0000_0111  # INIT first, commits fail and are slow, 1 in flight, 1 handle
with open(os.path.join(HERE, "seeds", "sftp_session", "upload-tight"), "wb") as f:
    f.write(bytes([tight]) + b"".join(sessions["upload"]))
