"""What a topic holds as the broker stores it: the bytes of its record batches, read with raw Fetch requests.

A Kafka broker keeps a producer's record batches as they arrive (compressed, headers and keys
included) and serves them back unchanged, so the record-set bytes a Fetch returns are what the
partition stores. librdkafka hands records over decompressed and never says how large their
batches were, so this speaks the protocol itself: Fetch v4 (no flexible versions), one partition
at a time, from offset 0 to the high watermark, counting each whole batch once.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

FETCH, FETCH_VERSION = 1, 4
#: RecordBatch: baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8, crc
#: uint32, attributes int16, lastOffsetDelta int32, then timestamps, producer fields, the count.
_BATCH_HEAD = struct.Struct(">qiibIhi")
_RECORDS_AT = 57  # where the int32 record count sits in a batch


@dataclass(frozen=True)
class StoredSize:
    """One topic as stored: bytes of its record batches, how many batches and records."""

    bytes: int
    batches: int
    records: int

    def __add__(self, other: StoredSize) -> StoredSize:
        return StoredSize(self.bytes + other.bytes, self.batches + other.batches, self.records + other.records)

    def __sub__(self, other: StoredSize) -> StoredSize:
        return StoredSize(self.bytes - other.bytes, self.batches - other.batches, self.records - other.records)


class _Connection:
    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.correlation = 0

    def close(self) -> None:
        self.sock.close()

    def _read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            out += chunk
        return bytes(out)

    def fetch(self, topic: str, partition: int, offset: int, max_bytes: int = 4 << 20) -> tuple[int, bytes]:
        """(high watermark, record-set bytes) of one partition from ``offset``."""
        self.correlation += 1
        client = b"watcher-es-bench"
        name = topic.encode()
        body = struct.pack(">iiiib", -1, 100, 1, max_bytes, 1)  # replica, max wait, min bytes, max bytes, read_committed
        body += struct.pack(">ih", 1, len(name)) + name + struct.pack(">iiqi", 1, partition, offset, max_bytes)
        request = struct.pack(">hhih", FETCH, FETCH_VERSION, self.correlation, len(client)) + client + body
        self.sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", self._read(4))
        data = self._read(size)
        at = 4 + 4 + 4  # correlation id, throttle time, topic count
        (name_len,) = struct.unpack_from(">h", data, at)
        at += 2 + name_len + 4  # the topic name, the partition count
        _, error, high = struct.unpack_from(">ihq", data, at)
        if error:
            raise ConnectionError(f"fetch {topic}/{partition}@{offset}: error code {error}")
        at += 4 + 2 + 8 + 8  # partition, error, high watermark, last stable offset
        (aborted,) = struct.unpack_from(">i", data, at)
        at += 4 + max(aborted, 0) * 16
        (length,) = struct.unpack_from(">i", data, at)
        return high, data[at + 4 : at + 4 + max(length, 0)]


def partition_size(connection: _Connection, topic: str, partition: int) -> StoredSize:
    total = StoredSize(0, 0, 0)
    offset, high = 0, None
    while high is None or offset < high:
        high, records = connection.fetch(topic, partition, offset)
        at, progressed = 0, False
        while at + _RECORDS_AT + 4 <= len(records):
            base, length, _, _, _, _, last_delta = _BATCH_HEAD.unpack_from(records, at)
            whole = 12 + length
            if at + whole > len(records):
                break  # a batch cut at the fetch's size limit: fetched whole next time
            (count,) = struct.unpack_from(">i", records, at + _RECORDS_AT)
            if base + last_delta >= offset:
                total += StoredSize(whole, 1, count)
                offset, progressed = base + last_delta + 1, True
            at += whole
        if not progressed and offset < high:
            raise ConnectionError(f"{topic}/{partition}: no whole batch at offset {offset} of {high}")
    return total


def topic_size(address: str, topic: str, partitions: int) -> StoredSize:
    """Every partition of ``topic`` on the broker at ``address`` (the one broker of a test cluster)."""
    connection = _Connection(address)
    try:
        total = StoredSize(0, 0, 0)
        for p in range(partitions):
            total += partition_size(connection, topic, p)
        return total
    finally:
        connection.close()
