"""The services' manifests are the platform's one list of processes, families and factories."""

from __future__ import annotations

from collections import Counter

import pytest

from kernel.manifest import Lazy, ProjectionFactory, ServiceManifest, Worker
from propstream.manifests import SERVICES, platform, worker
from propstream.processes import PLATFORM
from schemas import FAMILIES


def test_every_family_is_owned_by_exactly_one_service() -> None:
    owned = Counter(f.name for s in SERVICES for f in s.families)
    assert owned == Counter(f.name for f in FAMILIES)
    assert set(owned.values()) == {1}


def test_every_lazy_factory_names_something_importable() -> None:
    for service in SERVICES:
        targets = [w.factory for w in service.workers()]
        if service.api is not None:
            targets.append(service.api.factory)
        for target in targets:
            lazy = target.make if isinstance(target, ProjectionFactory) else target
            assert isinstance(lazy, Lazy), target
            assert callable(lazy.resolve()), lazy


def test_a_projection_worker_is_named_like_its_read_model() -> None:
    for service in SERVICES:
        for entry in service.projections:
            assert isinstance(entry.factory, ProjectionFactory)
            assert entry.factory.make().name == entry.name


def test_platform_is_the_manifests_process_list() -> None:
    assert {name: tuple(argv) for name, argv in PLATFORM.items()} == platform()
    assert "market-binance" not in PLATFORM  # live venues need the network: run by hand
    assert worker("market", "binance").platform is False


def test_an_unknown_worker_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="known: instrument, tier"):
        worker("decider", "nope")


def test_a_worker_listed_in_the_wrong_group_is_refused() -> None:
    policy = Worker(kind="policy", name="x", factory=Lazy("core.bootstrap", "api"))
    with pytest.raises(ValueError, match="listed among deciders"):
        ServiceManifest(name="toy", settings=object, deciders=(policy,))
