"""`tierzero diagram`: every blueprint's picture holds what its spec describes, the Mermaid text
parses with the real Mermaid parser (which also computes the Gantt bars), and the SVG Graphviz
lays out opens as an SVG document with a node per part."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest
from mermaid_parser import mermaid_parse
from spec_builder import blueprint_names, build_spec

from tierzero.adapters.graphviz_svg import svg_from_dot
from tierzero.engine.dag import build
from tierzero.phases.registry import all_steps
from tierzero.render.diagram import DeploySnapshot, StepTime, document, dot_source, flowchart, gantt, mermaid_blocks, schedule, topology
from tierzero.render.diagram.mermaid import label
from tierzero.spec import Platform

SVG = "{http://www.w3.org/2000/svg}"


def expected_parts(p: Platform) -> dict[str, str]:
    """Each part the spec names, by the diagram id it must have, with a text its label must carry."""
    out: dict[str, str] = {}
    if p.oci is not None:
        for inst in [*p.oci.a1_instances, *p.oci.micro_instances]:
            out[f"oci_{inst.name.replace('-', '_')}"] = inst.name
    if p.has_proxmox:
        for host in p.proxmox.nodes:
            out[f"pve_{host.name}_pve"] = host.name
    for c in p.clusters:
        for role, n in c.nodes():
            host = f"vm_{c.name}_{n.name}" if n.node else f"oci_{n.instance}"
            out[host.replace("-", "_")] = f"Talos {role}"
        if c.gitops is not None:
            out[f"cluster_{c.name}_repo"] = c.gitops.repo_url
            out[f"cluster_{c.name}_gitops"] = "Flux" if c.gitops.engine == "flux" else "Argo CD"
        for key in c.addons.enabled():
            out[f"cluster_{c.name}_{key}"] = key.replace("_", "-")
        out[f"cluster_{c.name}_api"] = c.endpoint
    for s in p.services:
        out[f"lxc_{s.name}"] = str(s.ip)
    return out


def cidrs(p: Platform) -> list[str]:
    found = [str(c.network.pod_cidr) for c in p.clusters] + [str(c.network.service_cidr) for c in p.clusters]
    if p.oci is not None:
        found += [p.oci.network.vcn_cidr, p.oci.network.subnet_cidr, *p.oci.network.admin_cidrs]
    if p.has_proxmox:
        found.append(str(p.proxmox.network))
    return found


def measured_snapshot(p: Platform, seed: int) -> DeploySnapshot:
    """The spec's real step graph with made-up durations (a few steps failed or never run)."""
    graph = build(all_steps(p))
    rng = random.Random(seed)
    steps = []
    for sid in graph.order:
        status = rng.choices(["done", "failed", "not run"], weights=[8, 1, 1])[0]
        seconds = round(rng.uniform(0.05, 90.0), 3) if status != "not run" else None
        steps.append(StepTime(sid, graph.phase_of(sid), graph.after[sid], status, seconds))
    return DeploySnapshot("sandbox", tuple(steps))


@pytest.fixture(scope="module")
def parsed() -> dict[str, list[dict]]:
    """Every blueprint's Mermaid blocks (with a measured deploy), parsed in one Node.js run."""
    texts: list[str] = []
    for name in blueprint_names():
        p = build_spec(name)
        texts += mermaid_blocks(document(topology(p), measured_snapshot(p, seed=len(name)), source="tierzero.yaml"))
    results = mermaid_parse(texts)
    return {name: results[2 * i: 2 * i + 2] for i, name in enumerate(blueprint_names())}


@pytest.mark.parametrize("blueprint", blueprint_names())
def test_the_flowchart_of_every_blueprint_parses_and_holds_each_part_in_its_place(parsed, blueprint):
    p = build_spec(blueprint)
    flow, _ = parsed[blueprint]
    assert flow["ok"], flow.get("error")
    assert flow["type"].startswith("flowchart")
    expected = expected_parts(p)
    assert len(expected) >= 5
    for node, text in expected.items():
        assert node in flow["nodes"], f"{node} is not in the parsed flowchart"
        assert text in flow["nodes"][node], (node, flow["nodes"][node])
    labels = " ".join([*flow["nodes"].values(), *(s["label"] for s in flow["subgraphs"].values())])
    for cidr in cidrs(p):
        assert cidr in labels, f"{cidr} is not drawn"
    if p.has_proxmox:  # each VM and LXC sits in the subgraph of the host the spec puts it on
        for c in p.clusters:
            for _, n in c.nodes():
                if n.node:
                    assert f"vm_{c.name}_{n.name}".replace("-", "_") in flow["subgraphs"][f"pve_{n.node}"]["nodes"]
        for s in p.services:
            assert f"lxc_{s.name}" in flow["subgraphs"][f"pve_{s.node}"]["nodes"]
    edges = {(a, b) for a, b, _ in flow["edges"]}
    for c in p.clusters:  # every node of a cluster is linked to its Kubernetes API
        for _, n in c.nodes():
            source = f"oci_{n.instance}" if n.instance else f"vm_{c.name}_{n.name}"
            assert (source.replace("-", "_"), f"cluster_{c.name}_api") in edges


@pytest.mark.parametrize("blueprint", blueprint_names())
def test_the_gantt_chart_mermaid_computes_is_the_dag_with_the_measured_times(parsed, blueprint):
    p = build_spec(blueprint)
    snapshot = measured_snapshot(p, seed=len(blueprint))
    _, chart = parsed[blueprint]
    assert chart["ok"], chart.get("error")
    assert chart["type"] == "gantt"
    tasks = {t["name"].split(" ")[0]: t for t in chart["tasks"]}
    measured = {s.id: s for s in snapshot.measured}
    assert set(tasks) == set(measured) and len(measured) > 10
    slots, makespan = schedule(snapshot)
    for slot in slots:  # mermaid's own start and end of each bar are the schedule's
        task = tasks[slot.step.id]
        assert task["start"] == round(slot.start * 1000)
        assert task["end"] - task["start"] == pytest.approx(slot.step.seconds * 1000, abs=1.5)
        assert task["section"] == slot.step.phase
        assert task["done"] == (slot.step.status == "done") and task["active"] == (slot.step.status == "failed")
    by_id = {s.id: s for s in snapshot.steps}
    for step in snapshot.measured:  # no bar starts before a bar it waits for (needs or the phase barrier) ends
        for before in step.after:
            if before in tasks:
                assert tasks[step.id]["start"] >= tasks[before]["end"] - 1, (step.id, before)
            else:
                assert by_id[before].seconds is None
    critical = [t for t in chart["tasks"] if t["crit"]]
    assert sum(t["end"] - t["start"] for t in critical) == pytest.approx(makespan * 1000, abs=len(critical) + 1)
    assert max(t["end"] for t in chart["tasks"]) == round(makespan * 1000)


def test_labels_with_mermaid_syntax_in_them_still_parse():
    from tierzero.render.diagram import Box, Group, Link, Topology

    nasty = ('say "hi"', "issue #3; done", "<b>bold</b>", "a -> b", "end")
    top = Topology("t", groups=[Group("g", nasty, "host", boxes=[Box("end_", nasty, "vm"), Box("o_node", ("o",), "vm")])],
                   links=[Link("end_", "o_node", 'x "y"')])
    result, = mermaid_parse([flowchart(top)])
    assert result["ok"], result.get("error")
    assert set(result["nodes"]) == {"end_", "o_node"}  # `o_node` after the arrow is a node, not a circle edge
    assert [e[:2] for e in result["edges"]] == [["end_", "o_node"]] and "quot" in result["edges"][0][2]  # mermaid keeps entities encoded
    assert "#35;3" in label(nasty) and "#lt;b#gt;" in label(nasty) and '"' not in label(nasty).strip('"')


def test_a_broken_text_is_refused_by_the_parser():  # the parser is real: it can fail
    result, = mermaid_parse(["flowchart LR\n  a[\"x\"] --> b[[\n"])
    assert not result["ok"] and "Parse error" in result["error"]


def test_no_measured_step_means_no_gantt_chart_and_says_how_to_get_one():
    p = build_spec("proxmox")
    graph = build(all_steps(p))
    snapshot = DeploySnapshot("real", tuple(StepTime(s, graph.phase_of(s), graph.after[s], "not run", None) for s in graph.order))
    assert gantt(snapshot) is None
    text = document(topology(p), snapshot, source="tierzero.yaml")
    assert len(mermaid_blocks(text)) == 1 and f"({len(graph.order)} steps in the DAG): run `tierzero deploy`" in text


def test_a_snapshot_out_of_order_is_refused():
    with pytest.raises(ValueError, match="b waits for a"):
        schedule(DeploySnapshot("real", (StepTime("b", "setup", ("a",), "done", 1.0), StepTime("a", "setup", (), "done", 1.0))))


@pytest.mark.parametrize("blueprint", blueprint_names())
def test_the_svg_of_every_blueprint_opens_with_a_node_per_part(blueprint):
    p = build_spec(blueprint)
    top = topology(p)
    svg = ET.fromstring(svg_from_dot(dot_source(top)))
    assert svg.tag == f"{SVG}svg"
    titled = {g.get("class"): set() for g in svg.iter(f"{SVG}g")}
    for g in svg.iter(f"{SVG}g"):
        title = g.find(f"{SVG}title")
        if title is not None and title.text:
            titled.setdefault(g.get("class"), set()).add(title.text)
    assert set(expected_parts(p)) <= titled["node"]
    assert {f"cluster_{g.id}" for g in top.groups} <= titled["cluster"]
    assert len(titled["edge"]) == len(top.links) > 0
    text = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
    for cidr in cidrs(p):
        assert cidr in text


def test_the_same_spec_draws_the_same_text():
    p = build_spec("oci-free-tier")
    snapshot = measured_snapshot(p, seed=7)
    assert document(topology(p), snapshot, source="x") == document(topology(build_spec("oci-free-tier")), snapshot, source="x")
    assert dot_source(topology(p)) == dot_source(topology(build_spec("oci-free-tier")))


def test_the_readme_picture_is_what_tierzero_draws_today():
    """docs/diagram-proxmox.md (shown in the README) holds the proxmox blueprint's flowchart as tierzero draws it now."""
    from pathlib import Path

    docs = Path(__file__).parents[2] / "docs"
    drawn = mermaid_blocks((docs / "diagram-proxmox.md").read_text())
    assert drawn[0] == flowchart(topology(build_spec("proxmox")))
    assert drawn[1].startswith("gantt") and "critical path" in drawn[1]
    svg = ET.parse(docs / "diagram-proxmox.svg").getroot()
    assert set(expected_parts(build_spec("proxmox"))) <= {t.text for t in svg.iter(f"{SVG}title")}


def test_the_state_gives_measured_times_and_where_the_instances_landed():
    """engine.snapshot reads the state records: a finished step's duration, none for one killed while running;
    the cloud step's outputs put each instance's addresses and AD, and the load balancer, into the picture."""
    from tierzero.engine.snapshot import CLOUD_STEP, deploy_snapshot
    from tierzero.engine.state import StepRecord

    p = build_spec("oci-talos")
    graph = build(all_steps(p))
    assert CLOUD_STEP in graph.steps
    first, second = graph.order[0], graph.order[1]
    a1 = p.oci.a1_instances[0].name
    cloud_outputs = {"instances": {a1: {"private_ip": "10.0.1.57", "public_ip": "141.147.9.9", "availability_domain": "Uocm:EU-FRANKFURT-1-AD-2"}},
                     "network_load_balancers": {p.clusters[0].name: "141.147.8.8"}}

    def record(sid: str, status: str, duration: float | None, outputs: dict | None = None) -> StepRecord:
        return StepRecord(sid, graph.phase_of(sid), status, "fp", outputs or {}, 1.0, None, duration, 1, None, 1)  # type: ignore[arg-type]

    records = {first: record(first, "done", 2.5), second: record(second, "running", None), CLOUD_STEP: record(CLOUD_STEP, "done", 30.0, cloud_outputs)}
    snapshot = deploy_snapshot(graph, records, target="real", last_run=None)
    seconds = {s.id: s.seconds for s in snapshot.steps}
    assert seconds[first] == 2.5 and seconds[second] is None and seconds[CLOUD_STEP] == 30.0
    assert {s.id for s in snapshot.measured} == {first, CLOUD_STEP} and len(snapshot.steps) == len(graph.order)
    labels = {b.id: b.lines for b in topology(p, snapshot).all_boxes()}
    assert "10.0.1.57 / 141.147.9.9 (public)" in labels[f"oci_{a1}".replace("-", "_")]
    assert "Uocm:EU-FRANKFURT-1-AD-2" in labels[f"oci_{a1}".replace("-", "_")]
    assert "load balancer 141.147.8.8" in labels[f"cluster_{p.clusters[0].name}_api"]
