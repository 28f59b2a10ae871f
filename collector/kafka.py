"""The Kafka transport (aiokafka) and the standalone Kafka collector."""

from ._kafka import BusBackpressure, KafkaBus, ensure_topics
from ._kafka_codec import decode_batch, decode_columns, encode_event
from ._kafka_ingest import KafkaCollector
from ._kafka_metrics import KafkaMetrics
from ._kafka_settings import KafkaSettings

__all__ = [
    "BusBackpressure",
    "KafkaBus",
    "KafkaCollector",
    "KafkaMetrics",
    "KafkaSettings",
    "decode_batch",
    "decode_columns",
    "encode_event",
    "ensure_topics",
]
