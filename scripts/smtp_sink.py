"""An SMTP server for sync-server/tests/email_smtp.rs, built on aiosmtpd (PyPI, installed by
scripts/aiosmtpd.sh).

Usage: smtp_sink.py OUT_DIR [--fail-first N]

Listens on 127.0.0.1 at a free port, prints the port on the first line of stdout, and writes
every accepted message to OUT_DIR/<n>.eml exactly as received (DATA), with its envelope
recipients in OUT_DIR/<n>.rcpt. With --fail-first N the first N messages are refused with a
temporary error (451), as a busy server would, so the sender's retries can be observed; every
refusal is counted in OUT_DIR/refused.
"""

import asyncio
import os
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, out_dir, fail_first):
        self.out_dir = out_dir
        self.fail_first = fail_first
        self.refused = 0
        self.accepted = 0

    async def handle_DATA(self, server, session, envelope):
        if self.refused < self.fail_first:
            self.refused += 1
            with open(os.path.join(self.out_dir, "refused"), "w") as f:
                f.write(str(self.refused))
            return "451 4.3.0 try again later"
        self.accepted += 1
        base = os.path.join(self.out_dir, str(self.accepted))
        # Written under a temporary name and renamed: the test never reads half a message.
        with open(base + ".rcpt.tmp", "w") as f:
            f.write("\n".join(envelope.rcpt_tos))
        os.replace(base + ".rcpt.tmp", base + ".rcpt")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.replace(base + ".eml.tmp", base + ".eml")
        return "250 OK"


async def main():
    out_dir = sys.argv[1]
    fail_first = 0
    if len(sys.argv) > 3 and sys.argv[2] == "--fail-first":
        fail_first = int(sys.argv[3])
    os.makedirs(out_dir, exist_ok=True)
    sink = Sink(out_dir, fail_first)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
