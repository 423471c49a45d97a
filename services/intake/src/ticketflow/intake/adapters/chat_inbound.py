"""Publishing an accepted message to `chat.inbound` before the webhook answers 202.

The normalised message goes out with the idempotent producer and acks=all (`ticketflow.messaging.producer`),
keyed by conversation (so one conversation stays on one partition, in order); the answer goes out only
after the broker acknowledged the write. Intake's own `chat.inbound` consumer then records it.

The request's trace context (the runtime's HTTP span, or the caller's forwarded one) goes with the record,
in its `traceparent`/`tracestate` headers, so the consumer continues the webhook's trace.

Its own producer, not the runtime's: tuned for the webhook's latency (`linger_ms=1`), with Kafka's
default partitioning computed fast and remembered per key (`ticketflow.messaging.partitioning`). A
`RenewingProducer`: after a broker restart left the producer's state broken, the next send replaces it
(tests/intake/test_chat_inbound_broker_restart.py), so webhooks are not refused until intake restarts."""

from __future__ import annotations

import msgspec

from ticketflow.contracts.chat import ChatMessage
from ticketflow.intake.domain.messages import conversation_key
from ticketflow.messaging import tracing
from ticketflow.messaging.metrics import RECORDS_PRODUCED
from ticketflow.messaging.partitioning import RememberingPartitioner
from ticketflow.messaging.producer import RenewingProducer, make_producer
from ticketflow.messaging.security import PLAINTEXT, KafkaSecurity

_encoder = msgspec.json.Encoder()


class ChatInbound:
    def __init__(self, bootstrap: str, topic: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self.topic = topic
        self._produced = RECORDS_PRODUCED.labels(topic)
        partitioner = RememberingPartitioner()
        self._producer = RenewingProducer(
            lambda: make_producer(
                bootstrap,
                security,
                linger_ms=1,  # under load batches fill while one is in flight; idle, a request waits 1 ms, not 5
                partitioner=partitioner,
                request_timeout_ms=10_000,
                client_id="ticketflow-intake",
            )
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, message: ChatMessage) -> None:
        traceparent, tracestate = tracing.current()
        headers = None
        if traceparent is not None:
            headers = [(tracing.TRACEPARENT, traceparent.encode())]
            if tracestate:
                headers.append((tracing.TRACESTATE, tracestate.encode()))
        value, key = _encoder.encode(message), conversation_key(message).encode()
        await self._producer.send_and_wait(self.topic, value, key=key, headers=headers)
        self._produced.inc()

    async def ready(self) -> str:
        """Readiness: the producer gets the topic's metadata (the broker answers, the topic exists)."""
        await self._producer.partitions_for(self.topic)
        return "ok"
