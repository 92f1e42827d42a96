#!/usr/bin/env python3
"""Talks to the dropgate emulator for the benchmark, outside the timed part.

  emulator_client.py seed BASE_URL TOKEN FOLDER COUNT   create COUNT empty files in FOLDER
  emulator_client.py reset-stats BASE_URL
  emulator_client.py busy-seconds BASE_URL              total handling time since the last reset
  emulator_client.py refusals BASE_URL                  calls refused by the rate-limit and
                                                        write-lock models since the last reset
  emulator_client.py realism BASE_URL [JSON]            print the models in force, or set them
  emulator_client.py distance BASE_URL [JSON]           print the distance in force, or set it
  emulator_client.py floor BASE_URL WORKLOAD COUNT SIZE CONNECTIONS
                                                        seconds the network alone needs for
                                                        WORKLOAD at the distance in force

Standard library only: the benchmark must run on a fresh machine.
"""
import http.client
import json
import sys
import threading
import urllib.parse


def connect(base):
    url = urllib.parse.urlparse(base)
    return http.client.HTTPConnection(url.hostname, url.port)


def header_json(value):
    # Dropbox-API-Arg must be ASCII; json.dumps escapes non-ASCII as \\uXXXX by default.
    return json.dumps(value)


def seed(base, token, folder, count):
    names = [f"{folder}/entry{i:05d}.txt" for i in range(count)]

    def worker(part):
        conn = connect(base)
        for path in part:
            arg = header_json({"path": path, "mode": "overwrite"})
            conn.request("POST", "/2/files/upload", body=b"", headers={
                "Authorization": f"Bearer {token}",
                "Dropbox-API-Arg": arg,
                "Content-Type": "application/octet-stream",
            })
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                raise SystemExit(f"upload {path}: HTTP {response.status}: {body[:200]!r}")

    threads = [threading.Thread(target=worker, args=(names[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def stats(base, method):
    conn = connect(base)
    conn.request(method, "/__emulator/stats")
    response = conn.getresponse()
    return json.loads(response.read() or b"{}")


def setting(base, hook, value=None):
    """GETs /__emulator/HOOK, or PUTs VALUE (JSON) there; returns the answer's text."""
    conn = connect(base)
    if value is None:
        conn.request("GET", f"/__emulator/{hook}")
    else:
        conn.request("PUT", f"/__emulator/{hook}", body=value.encode(),
                     headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"{hook}: HTTP {response.status}: {body[:200]!r}")
    return body.decode()


def floor(distance, workload, count, size, connections):
    """Seconds the network alone needs for WORKLOAD under DISTANCE (the emulator's JSON).

    A round trip is the latency; a transfer of SIZE bytes over CONNECTIONS connections needs
    SIZE / (CONNECTIONS x per-connection rate) plus one round trip.
    """
    setting = json.loads(distance)
    rtt = setting.get("latency_ms", 0) / 1000.0
    rate = setting.get("connection_bytes_per_sec") or float("inf")
    if workload in ("put_1g", "get_1g", "parallel_50"):
        return size / (connections * rate) + rtt
    if workload == "small_1000":
        # One commit per file, plus the mkdir and the client's stat of the target folder.
        return (count + 2) * rtt
    if workload == "ls_10k":
        # One round trip per page of 2,000 (Dropbox's largest), plus the client's stat of the
        # folder before it opens it.
        pages = max(1, -(-count // 2000))
        return (pages + 1) * rtt
    raise SystemExit(f"no floor for {workload}")


def main():
    command, base = sys.argv[1], sys.argv[2]
    if command == "seed":
        seed(base, sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif command == "reset-stats":
        stats(base, "DELETE")
    elif command == "busy-seconds":
        busy = stats(base, "GET").get("busy_ms", {})
        print(f"{sum(busy.values()) / 1000.0:.3f}")
    elif command == "refusals":
        counts = stats(base, "GET")
        print(f"rate_limit={counts.get('rate_limit_refusals', 0)} "
              f"write_lock={counts.get('write_lock_refusals', 0)}")
    elif command in ("realism", "distance"):
        print(setting(base, command, sys.argv[3] if len(sys.argv) > 3 else None))
    elif command == "floor":
        # floor BASE_URL WORKLOAD COUNT SIZE CONNECTIONS (the distance is asked of the emulator)
        seconds = floor(setting(base, "distance"), sys.argv[3], int(sys.argv[4]),
                        int(sys.argv[5]), int(sys.argv[6]))
        print(f"{seconds:.3f}")
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
