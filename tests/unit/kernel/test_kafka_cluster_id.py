from __future__ import annotations

import base64
import uuid

import pytest

from kernel.infra import kafka


def test_a_cluster_id_never_begins_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xF8 encodes to "-" first in URL-safe base64: the storage tool took such an id for an
    # option and `infra up` failed (seen once in CI).
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))
    fine = uuid.UUID(bytes=b"\x10" + bytes(15))
    assert base64.urlsafe_b64encode(dashed.bytes).decode().startswith("-")
    drawn = iter([dashed, dashed, fine])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(drawn))
    cluster_id = kafka._cluster_id()
    assert not cluster_id.startswith("-")
    assert base64.urlsafe_b64decode(cluster_id + "==") == fine.bytes


def test_random_cluster_ids_are_22_url_safe_characters() -> None:
    for _ in range(2000):
        cluster_id = kafka._cluster_id()
        assert len(cluster_id) == 22 and cluster_id[0] != "-"
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
