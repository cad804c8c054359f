"""Text generated from the services' manifests and the topic catalogue, between markers.

`propstream docs generate` rewrites each block in place; `--check` (and a unit test) report
the files whose block is stale. A block sits between `<!-- generated: NAME -->` and
`<!-- end generated: NAME -->` (in YAML, the same words after `# `).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kernel.manifest import ServiceManifest, Worker
from schemas.topics import TopicSpec

ROOT = Path(__file__).resolve().parent.parent


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def topics_table(catalogue: Sequence[TopicSpec]) -> str:
    """The catalogue as a Markdown table: name, kind, partitions, key, retention, carries."""
    lines = [_md_row(("topic", "kind", "partitions", "key", "retention", "carries")),
             _md_row(("---",) * 6)]
    for spec in catalogue:
        if spec.retention_ms < 0:
            retention = "forever"
        elif spec.retention_ms % 86_400_000 == 0:
            retention = f"{spec.retention_ms // 86_400_000} d"
        else:
            retention = f"{spec.retention_ms // 60_000} min"
        if spec.cleanup_policy == "compact":
            retention += ", compacted"
        carries = ", ".join(f"`{t}`" for t in spec.carries) or "—"
        lines.append(_md_row((f"`{spec.name}`", spec.kind, str(spec.partitions), spec.key,
                              retention, carries)))
    return "\n".join(lines)


def process_table(services: Sequence[ServiceManifest]) -> str:
    """Every process of every service: `propstream run` arguments, whether `up` starts it
    (a worker as a task of its service's group process, `propstream.groups`)."""
    from propstream.groups import group_name

    lines = [_md_row(("process", "service", "`propstream run …`", "in `up` and Helm", "does")),
             _md_row(("---",) * 5)]
    for service in services:
        if service.api is not None:
            lines.append(_md_row((f"`{service.api.process}`", service.name,
                                  f"`{' '.join(service.api.argv)}`", "yes",
                                  f"{service.api.description} (port "
                                  f"`PROPSTREAM_{service.api.port_setting.upper()}`)")))
        for worker in service.workers():
            lines.append(_md_row((f"`{worker.process}`", service.name,
                                  f"`{' '.join(worker.argv)}`",
                                  f"yes (`up`: in `{group_name(service)}`)" if worker.platform
                                  else "no", worker.description)))
    return "\n".join(lines)


def _names(workers: Iterable[Worker], kind: str) -> list[str]:
    return [w.name for w in workers if w.kind == kind and w.platform]


def helm_workers(services: Sequence[ServiceManifest]) -> str:
    """The chart's `workers:` values: one Deployment per name (the templates range over it)."""
    every = [w for s in services for w in s.workers()]
    groups = {"deciders": _names(every, "decider"), "projections": _names(every, "projection"),
              "policies": _names(every, "policy"), "market": _names(every, "market")}
    return "workers:\n" + "\n".join(f"  {key}: [{', '.join(names)}]"
                                    for key, names in groups.items())


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository root
    name: str
    render: Callable[[], str]

    def markers(self) -> tuple[str, str]:
        if self.path.endswith((".yaml", ".yml")):
            return f"# generated: {self.name}", f"# end generated: {self.name}"
        return f"<!-- generated: {self.name} -->", f"<!-- end generated: {self.name} -->"


def blocks(services: Sequence[ServiceManifest], catalogue: Sequence[TopicSpec]) -> list[Block]:
    return [
        Block("docs/architecture.md", "topics", lambda: topics_table(catalogue)),
        Block("docs/operations.md", "processes", lambda: process_table(services)),
        Block("helm/propstream/values.yaml", "workers", lambda: helm_workers(services)),
    ]


def replace_block(text: str, block: Block) -> str:
    """`text` with `block`'s body rendered afresh; ValueError when its markers are missing."""
    begin, end = block.markers()
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{block.path}: no {begin!r} … {end!r} block")
    return pattern.sub(lambda _m: f"{begin}\n{block.render()}\n{end}", text, count=1)


def generate(services: Sequence[ServiceManifest], catalogue: Sequence[TopicSpec], *,
             root: Path = ROOT, check: bool = False) -> list[str]:
    """Rewrite every generated block (or with `check`, only report); returns stale paths."""
    stale = []
    for block in blocks(services, catalogue):
        path = root / block.path
        text = path.read_text()
        fresh = replace_block(text, block)
        if fresh != text:
            stale.append(block.path)
            if not check:
                path.write_text(fresh)
    return stale
