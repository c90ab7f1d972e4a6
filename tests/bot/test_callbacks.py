"""Callback data round-trips through its factories and fits Telegram's 64-byte limit."""

from __future__ import annotations

import pytest

from bot.callbacks import EraseCancel, EraseConfirm, MoveLog, RevokeToken


def test_move_log_round_trip() -> None:
    packed = MoveLog(chat_id=-1009999999999, owner_id=9_999_999_999).pack()
    assert len(packed.encode()) <= 64
    unpacked = MoveLog.unpack(packed)
    assert (unpacked.chat_id, unpacked.owner_id) == (-1009999999999, 9_999_999_999)
    assert isinstance(unpacked.chat_id, int)


def test_revoke_token_round_trip() -> None:
    packed = RevokeToken(token_id=42).pack()
    assert RevokeToken.unpack(packed).token_id == 42
    assert not packed.startswith(MoveLog.__prefix__)


def test_erase_round_trip() -> None:
    for delete_log in (False, True):
        packed = EraseConfirm(owner_id=9_999_999_999, delete_log=delete_log).pack()
        assert len(packed.encode()) <= 64
        unpacked = EraseConfirm.unpack(packed)
        assert (unpacked.owner_id, unpacked.delete_log) == (9_999_999_999, delete_log)
    cancel = EraseCancel(owner_id=9_999_999_999).pack()
    assert EraseCancel.unpack(cancel).owner_id == 9_999_999_999
    # neither factory accepts the other's data
    with pytest.raises((TypeError, ValueError)):
        EraseConfirm.unpack(cancel)
    with pytest.raises((TypeError, ValueError)):
        EraseCancel.unpack(EraseConfirm(owner_id=1, delete_log=True).pack())
