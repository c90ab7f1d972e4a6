"""Delivery: claims due outbox messages, sends them through a channel, records each attempt,
retries with backoff and fails with a clear reason. `DeliveryWorker` is the entry point."""

from gateway.delivery.worker import DeliveryWorker, WorkerState

__all__ = ["DeliveryWorker", "WorkerState"]
