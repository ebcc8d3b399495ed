"""Generate the AsyncAPI 3.0 catalogue of Frontdesk's events from protos/ (one documented command).

python scripts/gen_asyncapi.py          # write protos/asyncapi.json
python scripts/gen_asyncapi.py --check  # exit 1 when the committed document is stale

Every event is an `Event` envelope (events.proto) on subject fd.<service>.<workspace_id>.<event>,
where <service> is the envelope's payload field and <event> the field set inside that service's
event message. The comments of the .proto files become the descriptions, so the catalogue says
what each event means; a unit test fails when the document is stale.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = PROTOS / "asyncapi.json"
PACKAGE = "frontdesk.v1"
ENVELOPE = f"{PACKAGE}.Event"

DELIVERY = """\
Delivery guarantees, the same for every subject:

- **At least once.** Events are written to the publishing service's outbox in the transaction of
  the change they describe and published by a relay with `Nats-Msg-Id = event_id`; a crash
  never loses or invents an event, but an event may arrive more than once.
  **De-duplicate by `event_id`** (JetStream also drops duplicates within its duplicate window).
- **Order per person.** Events about one person (and one membership) are published in the order
  their changes committed. Events about different persons may interleave in any order.
- **Absolute state.** Access events carry the resulting state (a person's `active` and
  `portal_access`, a role's permissions, a group's roles, one membership), so applying one again
  is harmless.
- **Streams.** Each publishing service has one JetStream stream (`FD_DIRECTORY`, `FD_AUTH`,
  `FD_TICKETS`, `FD_COMPLIANCE`, ...). Consume with a durable consumer and explicit ack; filter a
  workspace with `fd.<service>.<workspace_id>.>`.
- **Wire format.** The message body is the binary protobuf `frontdesk.v1.Event`; the schemas
  below are its JSON mapping (proto3 JSON: int64 as strings, Timestamps as RFC 3339).

Snapshot, then follow, without a gap: call the directory's `AccessService.GetAccessSnapshot`
(gRPC) or `GET /management/api/v1/access-snapshot` (JSON, Person:read) page by page; each page
names `stream_sequence` S. Start a durable consumer on `FD_DIRECTORY` with deliver policy
`by_start_sequence` and `opt_start_seq = S + 1`. Every event up to S is already in the
snapshot; every later one is delivered. `frontdesk_events` (in the repository) does this.
"""

_SCALARS: dict[int, dict[str, Any]] = {
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: {"type": "string"},
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: {"type": "boolean"},
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: {"type": "integer", "format": "int32"},
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: {"type": "integer", "format": "int32"},
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: {"type": "string", "format": "int64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: {"type": "string", "format": "int64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: {"type": "number"},
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: {"type": "number"},
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """The event .proto files compiled with their comments (source info)."""
    include = Path(protoc.__file__).parent / "_proto"
    files = sorted(
        str(p.relative_to(PROTOS)) for p in (PROTOS / "frontdesk" / "v1").glob("*.proto")
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = [
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{include}",
            f"--descriptor_set_out={out}",
            "--include_source_info",
            "--include_imports",
            *files,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(out.read_bytes())
    return fds


class Catalogue:
    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.comments: dict[str, str] = {}  # "pkg.Msg" or "pkg.Msg.field" -> comment
        for f in fds.file:
            if f.package != PACKAGE:
                continue
            for msg in f.message_type:
                self.messages[f"{PACKAGE}.{msg.name}"] = msg
            for loc in f.source_code_info.location:
                path = list(loc.path)
                text = (loc.leading_comments or loc.trailing_comments).strip()
                if not text or len(path) < 2 or path[0] != 4:  # 4: message_type
                    continue
                msg = f.message_type[path[1]]
                if len(path) == 2:
                    self.comments[f"{PACKAGE}.{msg.name}"] = text
                elif len(path) == 4 and path[2] == 2:  # 2: field
                    self.comments[f"{PACKAGE}.{msg.name}.{msg.field[path[3]].name}"] = text

    def describe(self, key: str) -> str:
        return " ".join(line.strip() for line in self.comments.get(key, "").splitlines())

    def schema(self, full_name: str, schemas: dict[str, Any]) -> dict[str, Any]:
        """A $ref to the JSON schema of a message, adding it (and what it uses) to `schemas`."""
        if full_name == ".google.protobuf.Timestamp":
            return {"type": "string", "format": "date-time"}
        name = full_name.lstrip(".")
        if name not in schemas:
            schemas[name] = {}  # placeholder against cycles
            msg = self.messages[name]
            props: dict[str, Any] = {}
            for field in msg.field:
                if field.type == descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE:
                    value = self.schema(field.type_name, schemas)
                elif field.type == descriptor_pb2.FieldDescriptorProto.TYPE_ENUM:
                    value = {"type": "string"}
                else:
                    value = dict(_SCALARS[field.type])
                if field.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
                    value = {"type": "array", "items": value}
                description = self.describe(f"{name}.{field.name}")
                if description:
                    value = (
                        {**value, "description": description}
                        if "$ref" not in value
                        else {
                            "allOf": [value],
                            "description": description,
                        }
                    )
                props[field.json_name] = value
            schemas[name] = {
                "type": "object",
                "description": self.describe(name) or name,
                "properties": props,
                "x-protobuf-message": name,
            }
        return {"$ref": f"#/components/schemas/{name}"}


def build() -> dict[str, Any]:
    cat = Catalogue(descriptor_set())
    envelope = cat.messages[ENVELOPE]
    schemas: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    base_props = {
        f.json_name: (
            {"type": "string", "format": "date-time"}
            if f.type_name == ".google.protobuf.Timestamp"
            else dict(_SCALARS[f.type])
        )
        | ({"description": d} if (d := cat.describe(f"{ENVELOPE}.{f.name}")) else {})
        for f in envelope.field
        if not f.HasField("oneof_index")
    }
    for service_field in envelope.field:
        if not service_field.HasField("oneof_index"):
            continue
        service = service_field.name
        service_msg = cat.messages[service_field.type_name.lstrip(".")]
        for event_field in service_msg.field:
            event = event_field.name
            key = f"{service}.{event}"
            payload_ref = cat.schema(event_field.type_name, schemas)
            meaning = cat.describe(f"{service_msg_name(service_field)}.{event}")
            kind_doc = cat.describe(event_field.type_name.lstrip("."))
            if not meaning:
                raise SystemExit(
                    f"{service_msg_name(service_field)}.{event} has no comment: say in the .proto"
                    " what the event means (a comment line above the field)"
                )
            summary = meaning
            messages[key] = {
                "name": event,
                "title": f"{service}: {event.replace('_', ' ')}",
                "summary": summary,
                "description": (
                    f"{summary}\n\nAn `Event` envelope whose `{service}.{event}` field is a "
                    f"`{event_field.type_name.lstrip('.')}`"
                    + (f" ({kind_doc})" if kind_doc and kind_doc != summary else "")
                    + "."
                ),
                "contentType": "application/x-protobuf",
                "headers": {
                    "type": "object",
                    "properties": {
                        "Nats-Msg-Id": {
                            "type": "string",
                            "format": "uuid",
                            "description": "The event_id: de-duplicate by it.",
                        }
                    },
                },
                "payload": {
                    "type": "object",
                    "x-protobuf-message": ENVELOPE,
                    "required": ["eventId", "workspaceId", "occurredAt", service],
                    "properties": {
                        **base_props,
                        service: {
                            "type": "object",
                            "required": [event_field.json_name],
                            "properties": {event_field.json_name: payload_ref},
                        },
                    },
                },
            }
            channels[key] = {
                "address": f"fd.{service}.{{workspace_id}}.{event}",
                "title": key,
                "description": summary,
                "parameters": {
                    "workspace_id": {"description": "The workspace (tenant) the event belongs to."}
                },
                "messages": {event: {"$ref": f"#/components/messages/{key}"}},
                "x-jetstream-stream": f"FD_{service.upper()}",
            }
            operations[f"receive.{key}"] = {
                "action": "receive",
                "title": f"Receive {key}",
                "channel": {"$ref": f"#/channels/{key}"},
                "messages": [{"$ref": f"#/channels/{key}/messages/{event}"}],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Frontdesk events",
            "version": "1.0.0",
            "description": (
                "The events Frontdesk's services publish on NATS JetStream, among them the "
                "access-change feed of the directory (persons, roles, groups, memberships, "
                "portal settings). Generated from protos/ by scripts/gen_asyncapi.py.\n\n"
                + DELIVERY
            ),
        },
        "defaultContentType": "application/x-protobuf",
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "The suite's NATS server with JetStream (FRONTDESK_NATS_URL).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def service_msg_name(service_field: descriptor_pb2.FieldDescriptorProto) -> str:
    return service_field.type_name.lstrip(".")


def encode(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def main() -> int:
    text = encode(build())
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run python scripts/gen_asyncapi.py")
            return 1
        print("the AsyncAPI document is up to date")
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
