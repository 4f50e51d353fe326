#!/usr/bin/env python3
"""Print blessd's notices (docs/protocol.md): one line each, the receive time (CLOCK_MONOTONIC, ns) then the JSON.

    subscriber.py SOCKET [--verdicts]

"dirty" notices say a file changed (its tags were cleared); with --verdicts, "verdict" notices too. A subscriber
that reads too slowly gets {"event": "lost", "count": N} where notices were dropped.
"""
import json
import socket
import sys
import time

s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall((json.dumps({"v": 1, "id": 1, "op": "subscribe", "verdicts": "--verdicts" in sys.argv}) + "\n").encode())
for line in s.makefile("rb"):
    print(time.monotonic_ns(), line.decode().rstrip(), flush=True)
