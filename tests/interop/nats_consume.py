"""Reads from JetStream, as a service in another language would, the event on a subject whose
`ce-correlationid` is the one given, checks it is a binary-mode CloudEvent (NATS binding: `ce-`
headers, `content-type`), decodes its protobuf data, and prints what it found as one JSON object.

usage: nats_consume.py URL SUBJECT DESCRIPTOR_SET MESSAGE_NAME CORRELATION_ID
"""

import asyncio
import json
import sys

import nats
from google.protobuf import json_format
from nats.js import api

from descriptors import message_class


async def main(url, subject, descriptor_set, message_name, correlation_id):
    Message = message_class(descriptor_set, message_name)
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            subject, ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL
        )
        while True:
            msg = await sub.next_msg(timeout=10)
            headers = msg.headers or {}
            if headers.get("ce-correlationid") == correlation_id:
                break
        attributes = {k[3:]: v for k, v in headers.items() if k.lower().startswith("ce-")}
        for required in ("specversion", "id", "source", "type"):
            if required not in attributes:
                raise SystemExit(f"missing ce-{required}: {headers}")
        if headers.get("content-type") != "application/protobuf":
            raise SystemExit(f"unexpected content-type: {headers}")
        event = Message.FromString(msg.data)
        print(
            json.dumps(
                {
                    "attributes": attributes,
                    "content_type": headers["content-type"],
                    "data": json_format.MessageToDict(event),
                }
            )
        )
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
