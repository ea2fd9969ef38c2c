#!/usr/bin/env python3
"""A real SMTP server for the email sink's tests (aiosmtpd), on 127.0.0.1 only.

Every accepted mail is written to --out as <n>.json (envelope, decoded subject, plain
text and HTML bodies, the raw message)
by temp file + rename, so a test never reads half a mail. With --tls-cert/--tls-key the
server offers STARTTLS and requires it; with --auth-user it requires AUTH (PLAIN/LOGIN)
with that user and the password in the environment variable SMTP_TEST_PASSWORD. Prints
"READY <port>" once it accepts connections; runs until its stdin closes or it is killed.
"""
import argparse
import email
import email.policy
import itertools
import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--auth-user")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    existing = [int(f.split(".")[0]) for f in os.listdir(args.out) if f.endswith(".json")]
    counter = itertools.count(max(existing, default=0) + 1)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            n = next(counter)
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            text = msg.get_body(("plain",))
            html = msg.get_body(("html",))
            body = {
                "subject": str(msg["subject"]),
                "from": str(msg["from"]),
                "to": str(msg["to"]),
                "message_id": str(msg["message-id"]),
                "headers": {k.lower(): str(v) for k, v in msg.items()},
                "text": text.get_content().replace("\r\n", "\n") if text is not None else None,
                "html": html.get_content().replace("\r\n", "\n") if html is not None else None,
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "data": envelope.content.decode("utf-8", "replace"),
                "tls": session.ssl is not None,
                "auth": session.authenticated,
            }
            tmp = os.path.join(args.out, f".{n}.tmp")
            with open(tmp, "w") as f:
                json.dump(body, f)
            os.rename(tmp, os.path.join(args.out, f"{n}.json"))
            return "250 OK"

    kw = {}
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        kw.update(tls_context=ctx, require_starttls=True)
    if args.auth_user:
        password = os.environ["SMTP_TEST_PASSWORD"]

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                auth_data.login is not None
                and auth_data.login.decode() == args.auth_user
                and auth_data.password.decode() == password
            )
            return AuthResult(success=ok)

        kw.update(authenticator=authenticator, auth_required=True,
                  auth_require_tls=bool(args.tls_cert))
    c = Controller(Handler(), hostname="127.0.0.1", port=args.port, **kw)
    c.start()
    print(f"READY {args.port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        c.stop()


if __name__ == "__main__":
    main()
