#!/usr/bin/python3
"""SPF with pyspf, as a receiver runs it, asking the lab's resolver.

stdin: {"resolver": "127.0.0.1:53", "cases": [{"id", "ip", "helo", "sender"}]}
stdout: one JSON object per case: {"id", "result", "detail"}.
An exception is reported as result "exception".
"""
import json
import sys

import dns.resolver
import spf


def main():
    req = json.load(sys.stdin)
    host, port = req["resolver"].rsplit(":", 1)
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [host]
    r.port = int(port)
    r.lifetime = 10
    dns.resolver.default_resolver = r
    for c in req["cases"]:
        try:
            result, detail = spf.check2(i=c["ip"], s=c["sender"], h=c["helo"], timeout=10, querytime=20)
        except Exception as e:  # pyspf throws on some HELO names
            result, detail = "exception", "%s: %s" % (type(e).__name__, e)
        print(json.dumps({"id": c["id"], "result": result, "detail": detail}), flush=True)


if __name__ == "__main__":
    main()
