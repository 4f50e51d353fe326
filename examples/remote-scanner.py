#!/usr/bin/env python3
"""An out-of-process blessd scanner (docs/protocol.md): denies every file that contains WORD.

    remote-scanner.py SOCKET NAME WORD [--observe]

Registers NAME on the control socket (must pass, unless --observe), then answers each scan request. The file
arrives as a descriptor over SCM_RIGHTS (read it with pread: the offset is ours); a request without one
("fd": false) is opened by path. Needs root: registering exempts this process from the gate.
"""
import json
import os
import socket
import sys

sock_path, name, word = sys.argv[1], sys.argv[2], sys.argv[3].encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock_path)


def send(msg):
    s.sendall((json.dumps({"v": 1, **msg}) + "\n").encode())


def contains_word(fd):
    tail, offset = b"", 0
    while chunk := os.pread(fd, 1 << 20, offset):
        if word in tail + chunk:
            return True
        tail, offset = chunk[-len(word):], offset + len(chunk)
    return False


send({"id": 1, "op": "register", "scanner": name, "mustPass": "--observe" not in sys.argv})
buf, fds = b"", []
while True:
    data, new_fds, _, _ = socket.recv_fds(s, 65536, 8)  # a descriptor rides on the first byte of its line
    if not data:
        break
    buf, fds = buf + data, fds + new_fds
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        msg = json.loads(line)
        if msg.get("event") != "scan":
            print(line.decode(), flush=True)  # the register reply, a cancel, an error
            continue
        fd = fds.pop(0) if msg["fd"] else os.open(msg["path"], os.O_RDONLY | os.O_NONBLOCK)
        try:
            bad = contains_word(fd)
        finally:
            os.close(fd)
        answer = {"answer": "deny", "reason": f"contains {word.decode()}"} if bad else {"answer": "ok"}
        send({"op": "answer", "req": msg["req"], **answer})
        print(json.dumps({"scanned": msg["path"], "fd": msg["fd"], **answer}), flush=True)
