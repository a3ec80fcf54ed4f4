#!/usr/bin/python3
"""DKIM with dkimpy: signs each message with its private key and verifies
the signature with the public key published in DNS, asked of the lab's
resolver; writes the signed message for the other verifiers.

stdin: {"resolver": "127.0.0.1:53", "messages": [{"id", "domain", "selector",
        "key", "type" ("rsa" or "ed25519"), "in", "out"}]}
stdout: one JSON object per message: {"id", "result", "detail"}.
"""
import json
import sys

import dkim
import dns.resolver


def main():
    req = json.load(sys.stdin)
    host, port = req["resolver"].rsplit(":", 1)
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [host]
    r.port = int(port)
    r.lifetime = 10

    def txt(name, timeout=5):
        try:
            a = r.resolve(name.decode().rstrip("."), "TXT", lifetime=10)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return b"".join(a[0].strings)

    for m in req["messages"]:
        try:
            with open(m["in"], "rb") as f:
                msg = f.read()
            with open(m["key"], "rb") as f:
                key = f.read()
            alg = b"ed25519-sha256" if m["type"] == "ed25519" else b"rsa-sha256"
            sig = dkim.sign(msg, m["selector"].encode(), m["domain"].encode(), key,
                            signature_algorithm=alg,
                            include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
            signed = sig + msg
            with open(m["out"], "wb") as f:
                f.write(signed)
            d = dkim.DKIM(signed)
            ok = d.verify(dnsfunc=txt)
            result, detail = ("pass" if ok else "fail"), ""
            if not ok:
                detail = "signature did not verify"
        except Exception as e:
            result, detail = "exception", "%s: %s" % (type(e).__name__, e)
        print(json.dumps({"id": m["id"], "result": result, "detail": detail}), flush=True)


if __name__ == "__main__":
    main()
