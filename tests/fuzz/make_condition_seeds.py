#!/usr/bin/env python3
"""Writes corpus/conditions/: inputs laid out as conditions_fuzz.cc reads them with
FuzzedDataProvider (strings from the front, numbers from the back, the body last),
so the seeds start from conditions an operator would write. Run from tests/fuzz/."""
import os

KINDS = {"json_equals": 0, "json_exists": 1, "body_matches": 2, "body_contains": 3,
         "latency_below": 4, "status_in": 5}


class Seed:
    def __init__(self):
        self.front = b""
        self.back = []  # bytes in the order they are consumed (from the end)

    def string(self, s):
        self.front += s.encode().replace(b"\\", b"\\\\") + b"\\n"

    def integral(self, value, lo, hi):
        rng, nbytes = hi - lo, 0
        while nbytes < 8 and (rng >> (8 * nbytes)) > 0:
            nbytes += 1
        v = value - lo
        self.back += list(v.to_bytes(nbytes, "big"))

    def build(self, body):
        return self.front + body + bytes(reversed(self.back))


def seed(conditions, body, status=200, latency_byte=0x20, give_json=1):
    s = Seed()
    s.integral(len(conditions), 1, 4)
    for kind, *args in conditions:
        s.integral(KINDS[kind], 0, 5)
        if kind == "json_equals":
            s.string(args[0])
            s.string(args[1])
        elif kind in ("json_exists", "body_matches", "body_contains"):
            s.string(args[0])
        elif kind == "latency_below":
            s.integral(args[0], 0, 86_400_000)
        elif kind == "status_in":
            s.integral(len(args[0]), 0, 4)
            for code in args[0]:
                s.integral(code, 100, 599)
    s.integral(status, 0, 599)
    s.back += [latency_byte] * 8
    s.back += [give_json]
    return s.build(body)


SEEDS = {
    "health_json": seed([("json_equals", "/status", "pass"), ("json_exists", "/checks"),
                         ("latency_below", 800), ("status_in", [200, 204])],
                        b'{"status":"pass","checks":{"db":[{"status":"pass"}]}}'),
    "number": seed([("json_equals", "/checks/db/0/observedValue", "12.0")],
                   b'{"checks":{"db":[{"observedValue":12}]}}', give_json=0),
    "escapes": seed([("json_equals", "/a~1b/~0c/1", "x"), ("json_exists", "/")],
                    b'{"a/b":{"~c":["w","x"]},"":1}'),
    "regex": seed([("body_matches", r"database.*ok"), ("body_contains", "OK")],
                  b"database: ok\nqueue: OK\n", status=503),
    "regex_classes": seed([("body_matches", r"(?i)^status:\s+(up|pass)\b"),
                           ("body_matches", r"[[:digit:]]{3,}")],
                          b"Status:  UP\nrequests 12345\n"),
    "bad_regex": seed([("body_matches", "(unclosed[")], b"anything"),
    "not_json": seed([("json_equals", "/status", "UP"), ("status_in", [])],
                     b"<html>502 Bad Gateway</html>", status=502),
    "null_bool": seed([("json_equals", "/ok", "true"), ("json_equals", "/v", "null")],
                      b'{"ok":true,"v":null}'),
    "latency": seed([("latency_below", 1500), ("latency_below", 0)], b"", status=0,
                    latency_byte=0xff),
    "utf8": seed([("body_contains", "caf\u00e9"), ("json_equals", "/n", "\u00e9t\u00e9")],
                 '{"n":"\u00e9t\u00e9","x":"caf\u00e9"}'.encode() + b"\xff"),
}

os.makedirs("corpus/conditions", exist_ok=True)
for name, data in SEEDS.items():
    with open(f"corpus/conditions/{name}", "wb") as f:
        f.write(data)
