#!/usr/bin/env python3
"""Signs many copies of one cc-auth-v1 request, each with its own nonce, for wrk.

The gateway refuses a nonce it has seen, so a benchmark of signed requests with nonces needs one
signature per request. This writes a text file: the body's SHA-256 on the first line, then one
"x-authorization nonce" pair per line, which bench/run-openai.sh's wrk script reads at start and
cycles through (each wrk thread takes its own share). Plain lines, not a Lua table literal: LuaJIT
refuses a chunk with that many constants.

The signing follows aksk-v1.md (the same steps as Sources/AKSKSigning):
  prefix     = "cc-auth-v1/" + AK + "/" + timestamp + "/" + expiration
  canonical  = METHOD \\n path \\n (empty query) \\n sorted "name:encodeURIComponent(value)" lines
  signingKey = hex(HMAC-SHA256(SK, prefix)); signature = hex(HMAC-SHA256(signingKey, canonical))

Usage: sign_requests.py --access-key AK --secret-key SK --host 127.0.0.1:9000 \
           --path /ai/invoke/chat_completion --body '{"question":"hi"}' --count 100000 --out signed.txt
"""
import argparse
import hashlib
import hmac
import secrets
import time
import urllib.parse


def encode_uri_component(text: str) -> str:
    return urllib.parse.quote(text, safe="-_.!~*'()")


def sign(access_key, secret_key, method, host, path, body_sha256, nonce, timestamp, expiration):
    prefix = f"cc-auth-v1/{access_key}/{timestamp}/{expiration}"
    headers = {"host": host, "x-cc-content-sha256": body_sha256, "x-cc-nonce": nonce}
    lines = sorted(f"{encode_uri_component(name)}:{encode_uri_component(value.strip())}" for name, value in headers.items())
    canonical = "\n".join([method.upper(), path, ""] + ["\n".join(lines)])
    signing_key = hmac.new(secret_key.encode(), prefix.encode(), hashlib.sha256).hexdigest()
    signature = hmac.new(signing_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return f"{prefix}/{';'.join(sorted(headers))}/{signature}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--expiration", type=int, default=3600)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    body_sha256 = hashlib.sha256(args.body.encode()).hexdigest()
    # One timestamp for all: a device signing many requests in the same second shares a prefix.
    timestamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(args.out, "w") as out:
        out.write(f"{body_sha256}\n")
        for _ in range(args.count):
            nonce = secrets.token_hex(16)
            auth = sign(args.access_key, args.secret_key, "POST", args.host, args.path, body_sha256, nonce, timestamp, args.expiration)
            out.write(f"{auth} {nonce}\n")


if __name__ == "__main__":
    main()
