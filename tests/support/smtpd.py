"""A real SMTP server for jwtd's tests: aiosmtpd on 127.0.0.1:PORT, each message it accepts
stored as one JSON file in DIRECTORY (written aside, then renamed in, so a reader never sees half
of one). Runs until its standard input closes or it is killed.

    python smtpd.py PORT DIRECTORY
"""

import email
import json
import os
import sys
import time
import uuid
from email import policy

from aiosmtpd.controller import Controller


class StoreMessages:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "content_type": message.get_content_type(),
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
        }
        name = f"{time.time_ns()}-{uuid.uuid4().hex}.json"
        partial = os.path.join(self.directory, "." + name)
        with open(partial, "w", encoding="utf-8") as file:
            json.dump(record, file)
        os.rename(partial, os.path.join(self.directory, name))
        return "250 Message accepted for delivery"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(StoreMessages(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
