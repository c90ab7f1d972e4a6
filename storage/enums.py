"""Closed vocabularies stored in the database (values are the API's strings)."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    AUTH = "auth"
    PLUGIN = "plugin"
    PAYMENT = "payment"
    COMMUNICATION = "communication"
    SYSTEM = "system"
    GENERAL = "general"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class MessageStatus(StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"


class Channel(StrEnum):
    TELEGRAM = "telegram"
    EMAIL = "email"
    WEBHOOK = "webhook"
    SMS = "sms"
    PUSH = "push"


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # transient failure: another attempt is scheduled
    FAILED = "failed"  # permanent failure on this channel: fall back to the next one


class ContactState(StrEnum):
    PENDING = "pending"  # added, waiting for its verification code
    VERIFIED = "verified"  # usable
    BOUNCING = "bouncing"  # email: a permanent rejection; unused until verified again
    DISABLED = "disabled"  # webhook 410 or failing for days, push refused, SMS unreachable
