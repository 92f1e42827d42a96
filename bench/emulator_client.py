#!/usr/bin/env python3
"""Talks to the dropgate emulator for the benchmark, outside the timed part.

  emulator_client.py seed BASE_URL TOKEN FOLDER COUNT   create COUNT empty files in FOLDER
  emulator_client.py reset-stats BASE_URL
  emulator_client.py busy-seconds BASE_URL              total handling time since the last reset
  emulator_client.py refusals BASE_URL                  calls refused by the rate-limit and
                                                        write-lock models since the last reset
  emulator_client.py realism BASE_URL [JSON]            print the models in force, or set them

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


def realism(base, models=None):
    conn = connect(base)
    if models is None:
        conn.request("GET", "/__emulator/realism")
    else:
        conn.request("PUT", "/__emulator/realism", body=models.encode(),
                     headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"realism: HTTP {response.status}: {body[:200]!r}")
    return body.decode()


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
    elif command == "realism":
        print(realism(base, sys.argv[3] if len(sys.argv) > 3 else None))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
