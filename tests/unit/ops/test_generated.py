"""Tables and chart values generated from the manifests: fresh in the tree, and a new family
declared in one service's manifest reaches every derived view without any other edit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kernel.manifest import Lazy, ServiceManifest, Worker, processes, projection
from propstream.generated import ROOT, Block, blocks, generate, helm_workers, replace_block
from propstream.manifests import SERVICES
from schemas import FAMILIES, registry_for
from schemas.envelope import CommandPayload, EventPayload
from schemas.family import Family
from schemas.topics import CATALOGUE, catalogue


class OpenWidget(CommandPayload):
    TYPE = "widget.open"


class WidgetOpened(EventPayload):
    TYPE = "widget.opened"


WIDGET = Family(name="widget", commands=(OpenWidget,), events=(WidgetOpened,), partitions=2,
                key="widget id")
TOY = ServiceManifest(
    name="toy",
    settings=object,
    families=(WIDGET,),
    deciders=(Worker(kind="decider", name="widget", factory=Lazy("toy.bootstrap", "decider"),
                     description="decides widget.commands"),),
    projections=(projection("widgets", Lazy("toy.adapters", "WidgetsProjection"),
                            "`widgets` from widget.events"),),
)


def test_the_committed_blocks_are_fresh() -> None:
    assert generate(SERVICES, CATALOGUE, check=True) == [], (
        "run `propstream docs generate` and commit the result")


def test_a_toy_family_in_a_toy_manifest_reaches_every_derived_view(tmp_path: Path) -> None:
    services = (*SERVICES, TOY)
    families = (*FAMILIES, *(f for s in (TOY,) for f in s.families))

    assert processes(services)["widget-decider"] == ("decider", "widget")
    assert processes(services)["projection-widgets"] == ("projection", "widgets")
    names = {spec.name: spec for spec in catalogue(families)}
    assert {"widget.commands", "widget.events", "widget.snapshots", "widget.commands.dlq",
            "widget.events.dlq"} <= set(names)
    assert names["widget.commands"].carries == ("widget.open",)
    assert names["widget.events"].partitions == names["widget.commands"].partitions == 2
    registry = registry_for(families)
    assert registry.model("widget.open") is OpenWidget
    assert registry.model("widget.opened") is WidgetOpened

    for block in blocks(services, catalogue(families)):
        target = tmp_path / block.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((ROOT / block.path).read_text())
    assert sorted(generate(services, catalogue(families), root=tmp_path)) == sorted(
        b.path for b in blocks(services, CATALOGUE))
    processes_doc = (tmp_path / "docs/operations.md").read_text()
    assert ("| `widget-decider` | toy | `decider widget` | yes (`up`: in `toy-workers`) | "
            "decides widget.commands |") in processes_doc
    assert "`projection-widgets`" in processes_doc
    topics_doc = (tmp_path / "docs/architecture.md").read_text()
    assert "| `widget.events` | events | 2 | widget id | forever | `widget.opened` |" in topics_doc
    values = yaml.safe_load((tmp_path / "helm/propstream/values.yaml").read_text())
    assert "widget" in values["workers"]["deciders"]
    assert "widgets" in values["workers"]["projections"]


def test_the_charts_workers_are_the_manifests() -> None:
    values = yaml.safe_load((ROOT / "helm/propstream/values.yaml").read_text())
    assert {"workers": values["workers"]} == yaml.safe_load(helm_workers(SERVICES))
    assert "market-instruments" in values["workers"]["projections"]


def test_a_file_without_its_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="no '<!-- generated: topics -->'"):
        replace_block("# no markers here\n", Block("docs/x.md", "topics", lambda: "t"))
