"""SMTP sink for the mail tests: an aiosmtpd server on a free loopback port that writes every
received mail, decoded, as JSON (`<n>.json`: rcpt, from, to, subject, text, html) into the
directory given as argv[1]. Prints `ready <port>` once listening; stops on stdin EOF."""
import email
import email.policy
import json
import os
import socket
import sys

from aiosmtpd.controller import Controller

OUT = sys.argv[1]


class Handler:
    def __init__(self):
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {"text/plain": "", "text/html": ""}
        for part in message.walk():
            if part.get_content_type() in parts and not part.is_multipart():
                parts[part.get_content_type()] = part.get_content()
        self.count += 1
        record = {
            "rcpt": envelope.rcpt_tos,
            "mailFrom": envelope.mail_from,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "text": parts["text/plain"],
            "html": parts["text/html"],
        }
        tmp = os.path.join(OUT, f"{self.count:06}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(OUT, f"{self.count:06}.json"))
        return "250 OK"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
controller = Controller(Handler(), hostname="127.0.0.1", port=port)
controller.start()
print(f"ready {port}", flush=True)
sys.stdin.read()
controller.stop()
