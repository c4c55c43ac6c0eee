// Parse Mermaid texts with the real parser of the pinned mermaid package, and report what its
// diagram database holds after parsing (what mermaid itself would then draw).
// Input on stdin: a JSON array of strings. Output on stdout: a JSON array with, per text,
//   {"ok": false, "error": "<first lines>"}, or {"ok": true, "type": "<diagramType>", ...} with
//   flowchart: "nodes" {id: label}, "subgraphs" {id: {"label", "nodes": [ids]}}, "edges" [[from, to, label]];
//   gantt: "tasks" [{"name", "id", "section", "start", "end" (ms), "crit", "done", "active"}].
// mermaid.parse needs a DOM for DOMPurify (it sanitizes labels); jsdom provides one.
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false });

function contents(type, db) {
  if (type.startsWith('flowchart')) {
    const nodes = {};
    for (const [id, v] of db.getVertices()) nodes[id] = v.text;
    const subgraphs = {};
    for (const s of db.getSubGraphs()) subgraphs[s.id] = { label: s.title, nodes: s.nodes };
    const edges = db.getEdges().map((e) => [e.start, e.end, e.text || '']);
    return { nodes, subgraphs, edges };
  }
  if (type === 'gantt') {
    const tasks = db.getTasks().map((t) => ({
      name: t.task.trim(), id: t.id, section: t.section, start: t.startTime.getTime(), end: t.endTime.getTime(),
      crit: Boolean(t.crit), done: Boolean(t.done), active: Boolean(t.active),
    }));
    return { tasks };
  }
  return {};
}

let input = '';
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const text of JSON.parse(input)) {
  try {
    const parsed = await mermaid.parse(text);
    const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
    results.push({ ok: true, type: parsed.diagramType, ...contents(parsed.diagramType, diagram.db) });
  } catch (error) {
    results.push({ ok: false, error: String(error.message || error).split('\n').slice(0, 3).join(' | ') });
  }
}
process.stdout.write(JSON.stringify(results));
