"""``GET /dashboard``: a read-only page for admins, and ``GET /dashboard/data``, which it polls.

The page is rendered here from :meth:`glint.dashboard.Dashboard.snapshot` (no build step, no
template engine: every value goes through :func:`html.escape`), and its inline script fetches
``/dashboard/data`` every :data:`POLL_MS` and rebuilds the same tables with ``textContent``,
so task messages and names stay text in both. ``?task=ID`` shows one task's timeline. Both
routes go through the identity middleware like the API and answer admins only (403 for the
rest); the page sends a Content-Security-Policy that runs only its own script.
"""

from __future__ import annotations

import html
import secrets
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute

from glint import errors
from glint.api import routing
from glint.api.identity import context as request_context
from glint.dashboard import Dashboard

PATH = "/dashboard"
DATA_PATH = "/dashboard/data"
POLL_MS = 2000
CHART_WIDTH, CHART_HEIGHT = 600, 120


def routes(board: Dashboard) -> list[BaseRoute]:
    async def page(request: Request) -> Response:
        _require_admin(request)
        task_id = request.query_params.get("task")
        if task_id is not None:
            task = await run_in_threadpool(board.task, task_id)
            body = _task_page(task)
        else:
            body = _overview_page(await run_in_threadpool(board.snapshot))
        nonce = secrets.token_urlsafe(16)
        return HTMLResponse(_document(body, nonce), headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": f"default-src 'none'; script-src 'nonce-{nonce}'; "
                                       "style-src 'unsafe-inline'; connect-src 'self'"})

    async def data(request: Request) -> Response:
        _require_admin(request)
        task_id = request.query_params.get("task")
        if task_id is not None:
            body = {"task": await run_in_threadpool(board.task, task_id)}
        else:
            body = await run_in_threadpool(board.snapshot)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return [routing.resource(PATH, {"GET": page}), routing.resource(DATA_PATH, {"GET": data})]


def _require_admin(request: Request) -> None:
    if not request_context(request).is_admin:
        raise errors.Forbidden("The dashboard is for admins.")


# -- HTML -----------------------------------------------------------------------------------

def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(table_id: str, headers: tuple[str, ...], rows: list[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return (f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _row(*cells: str, attrs: str = "") -> str:
    return f"<tr{attrs}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _progress(progress: dict[str, Any] | None) -> str:
    if not progress:
        return ""
    percent = progress.get("percent")
    if percent is None:
        return f'<progress max="100"></progress> <span>{_e(_size(progress.get("done")))}</span>'
    return (f'<progress max="100" value="{_e(percent)}"></progress> '
            f"<span>{_e(percent)}%</span>")


def _size(value: object) -> str:
    if not isinstance(value, int):
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # not reached


def _points(throughput: list[dict[str, Any]]) -> str:
    counts = [point["finished"] for point in throughput]
    top = max([1, *counts])
    step = CHART_WIDTH / max(1, len(counts) - 1)
    return " ".join(f"{i * step:.0f},{CHART_HEIGHT - n * (CHART_HEIGHT - 10) / top:.0f}"
                    for i, n in enumerate(counts))


def _overview_page(snapshot: dict[str, Any]) -> str:
    # Bars and workers for running tasks only: a finished task's progress is its last report
    # (rate-limited: glint.tasks.progress), which need not say 100%.
    states = [_row(_e(s["status"]), _e(s["type"]), _e(s["count"]))
              for s in snapshot["tasks_by_state"]]
    recent = [_row(f'<a href="?task={_e(t["id"])}">{_e(t["id"])}</a>', _e(t["type"]),
                   f'<span class="status {_e(t["status"])}">{_e(t["status"])}</span>',
                   _e(t["owner"]), _e(t["created_at"]), _e(f'{t["attempts"]}/{t["max_attempts"]}'),
                   _e(t["lease_owner"] if t["status"] == "processing" else ""),
                   _progress(t["progress"]) if t["status"] == "processing" else "",
                   _e(t["message"]),
                   attrs=f' data-task-id="{_e(t["id"])}"') for t in snapshot["recent"]]
    workers = [_row(_e(w["name"]), _e(w["tasks"]), _e(w["lease_expires_at"]))
               for w in snapshot["workers"]]
    stores = [_row(_e(s["store"]), _e(s["images"]), _e(_size(s["bytes"])))
              for s in snapshot["stores"]]
    finished = sum(point["finished"] for point in snapshot["throughput"])
    return f"""
<h2>Tasks by state and type</h2>
{_table("states", ("Status", "Type", "Tasks"), states)}
<h2>Recent tasks</h2>
{_table("recent", ("ID", "Type", "Status", "Project", "Created", "Attempts", "Worker",
                   "Progress", "Message"), recent)}
<h2>Workers holding leases</h2>
{_table("workers", ("Worker", "Tasks", "Lease expires"), workers)}
<h2>Stores</h2>
{_table("stores", ("Store", "Images", "Bytes"), stores)}
<h2>Tasks finished per minute (last {len(snapshot["throughput"])} minutes:
<span id="finished">{finished}</span>)</h2>
<svg id="throughput" width="{CHART_WIDTH}" height="{CHART_HEIGHT}"
 viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="tasks finished per minute">
<polyline fill="none" stroke="#2a6" stroke-width="2"
 points="{_points(snapshot["throughput"])}"/></svg>"""


_TIMELINE = (("Created", "created_at"), ("Updated", "updated_at"), ("Type", "type"),
             ("Project", "owner"), ("Image", "image_id"), ("Attempts", "attempts"),
             ("Retries", "retries"), ("Worker", "lease_owner"),
             ("Lease expires", "lease_expires_at"), ("Progress (last report)", "progress"),
             ("Cancel requested", "cancel_requested"), ("Outcome", "status"),
             ("Message", "message"))


def _task_page(task: dict[str, Any]) -> str:
    items = []
    for label, key in _TIMELINE:
        value = task.get(key)
        if key == "progress":
            shown = _progress(value)
        elif key == "attempts":
            shown = _e(f'{value}/{task["max_attempts"]}')
        elif key == "status":
            shown = f'<span class="status {_e(value)}">{_e(value)}</span>'
        else:
            shown = _e(value)
        items.append(f'<dt>{_e(label)}</dt><dd data-key="{key}">{shown}</dd>')
    runs = [_row(_e(run["number"]), _e(run["worker"]), _e(run["started_at"]),
                 _e(run["ended_at"] or ""), _outcome(run["outcome"]), _e(run["message"]))
            for run in task["history"]]
    return (f'<p><a href="{PATH}">All tasks</a></p><h2>Task {_e(task["id"])}</h2>'
            f'<dl id="task">{"".join(items)}</dl><h2>Runs</h2>'
            + _table("history", ("#", "Worker", "Started", "Ended", "Outcome", "Message"), runs))


def _outcome(outcome: str | None) -> str:
    """A run's outcome as the page shows it: a run without one is still running."""
    shown = outcome or "running"
    return f'<span class="status {_e(shown)}">{_e(shown)}</span>'



_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1em}th,td{border:1px solid #ccc;padding:.25em .5em;
text-align:left;vertical-align:top}td:last-child{max-width:30em;overflow-wrap:anywhere}
.status.success{color:#080}.status.failure{color:#b00}.status.processing{color:#06c}
dl{display:grid;grid-template-columns:max-content auto;gap:.25em 1em}dt{font-weight:600}
svg{border:1px solid #ccc;background:#fafafa}
"""

# Rebuilds what the server rendered from /dashboard/data; text only ever goes in textContent.
_SCRIPT = """
const POLL_MS = %(poll)d, W = %(width)d, H = %(height)d;
const taskId = new URLSearchParams(location.search).get("task");
function el(tag, attrs, ...kids) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const kid of kids) node.append(kid instanceof Node ? kid : String(kid ?? ""));
  return node;
}
function size(n) {
  if (typeof n !== "number") return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i ? n.toFixed(1) + " " + units[i] : n + " B";
}
function bar(p) {
  if (!p) return "";
  const span = el("span");
  if (p.percent === null || p.percent === undefined) {
    span.append(el("progress", {max: "100"}), " ", size(p.done));
  } else {
    span.append(el("progress", {max: "100", value: String(p.percent)}), " ", p.percent + "%%");
  }
  return span;
}
function status(s) { return el("span", {class: "status " + s}, s); }
function fill(id, rows) {
  document.getElementById(id).tBodies[0].replaceChildren(
    ...rows.map(([cells, attrs]) => el("tr", attrs, ...cells.map(c => el("td", {}, c)))));
}
function overview(d) {
  fill("states", d.tasks_by_state.map(s => [[s.status, s.type, s.count]]));
  fill("recent", d.recent.map(t => [[el("a", {href: "?task=" + encodeURIComponent(t.id)}, t.id),
    t.type, status(t.status), t.owner, t.created_at, t.attempts + "/" + t.max_attempts,
    ...(t.status === "processing" ? [t.lease_owner || "", bar(t.progress)] : ["", ""]),
    t.message],
    {"data-task-id": t.id}]));
  fill("workers", d.workers.map(w => [[w.name, w.tasks, w.lease_expires_at || ""]]));
  fill("stores", d.stores.map(s => [[s.store, s.images, size(s.bytes)]]));
  const counts = d.throughput.map(p => p.finished);
  const top = Math.max(1, ...counts), step = W / Math.max(1, counts.length - 1);
  document.querySelector("#throughput polyline").setAttribute("points", counts.map(
    (n, i) => Math.round(i * step) + "," + Math.round(H - n * (H - 10) / top)).join(" "));
  document.getElementById("finished").textContent = counts.reduce((a, b) => a + b, 0);
}
function detail(t) {
  for (const dd of document.querySelectorAll("#task dd")) {
    const key = dd.dataset.key, value = t[key];
    dd.replaceChildren(key === "progress" ? bar(value) : key === "status" ? status(value)
      : key === "attempts" ? value + "/" + t.max_attempts : String(value ?? ""));
  }
  fill("history", t.history.map(r => [[r.number, r.worker, r.started_at, r.ended_at || "",
    status(r.outcome || "running"), r.message]]));
}
async function poll() {
  try {
    const url = "%(data)s" + (taskId ? "?task=" + encodeURIComponent(taskId) : "");
    const response = await fetch(url, {cache: "no-store", credentials: "same-origin"});
    if (response.ok) {
      const d = await response.json();
      if (taskId) detail(d.task); else overview(d);
      document.getElementById("updated").textContent = new Date().toISOString();
    }
  } catch (e) { /* the next poll tries again */ }
  setTimeout(poll, POLL_MS);
}
setTimeout(poll, POLL_MS);
"""


def _document(body: str, nonce: str) -> str:
    script = _SCRIPT % {"poll": POLL_MS, "width": CHART_WIDTH, "height": CHART_HEIGHT,
                        "data": DATA_PATH}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>glint dashboard</title>
<style>{_STYLE}</style></head>
<body><h1>glint dashboard</h1>
<p>Read-only; updates every {POLL_MS // 1000} s (last: <span id="updated">page load</span>).</p>
{body}
<script nonce="{nonce}">{script}</script></body></html>
"""
