"""Publishes one event to JetStream as a service in another language would: protobuf data in
CloudEvents binary mode by the NATS binding (`ce-` headers, `content-type`).

usage: nats_produce.py URL SUBJECT DESCRIPTOR_SET MESSAGE_NAME FIELDS_JSON CORRELATION_ID
"""

import asyncio
import datetime
import sys
import uuid

import nats
from google.protobuf import json_format

from descriptors import message_class


async def main(url, subject, descriptor_set, message_name, fields_json, correlation_id):
    Message = message_class(descriptor_set, message_name)
    event = json_format.Parse(fields_json, Message())
    event_id = str(uuid.uuid4())
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-source": "python-producer",
        "ce-type": subject,
        "ce-time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "ce-dataschema": "proto:" + message_name,
        "ce-correlationid": correlation_id,
        "content-type": "application/protobuf",
        "Nats-Msg-Id": event_id,
    }
    nc = await nats.connect(url)
    try:
        ack = await nc.jetstream().publish(
            subject, event.SerializeToString(), headers=headers, timeout=10
        )
        print(f"stored in {ack.stream} at {ack.seq}")
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
