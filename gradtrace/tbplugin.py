"""The gradtrace tab in TensorBoard: a dynamic plugin (API.md §8).

Loaded by TensorBoard through the ``tensorboard_plugins`` entry point, so its
import must never fail or be slow: this module imports the standard library,
``werkzeug``, ``tensorboard`` and gradtrace's own standard-library-only
modules (`tags`, `findings`), never numpy or TensorFlow (a test enforces it).

A *gradtrace run* is a folder of the logdir that holds ``gradtrace.json`` or
``findings.jsonl`` and whose ``train/`` folder is a TensorBoard run. Data
comes from TensorBoard's data provider (the scalar tags gradtrace writes;
downsampled server-side, so long runs open quickly) and from the run's
``findings.jsonl`` and ``gradtrace.json``.

Routes, under ``/data/plugin/gradtrace``:

    /index.js, /static/<file>      the frontend (plain ES modules, CSS)
    /runs                          [{"run": name, "train": tb_run}, ...]
    /findings?run=R                findings, worst first ({Finding fields})
    /health?run=R&quantity=Q       {"layers", "steps", "values" [layer][bin],
                                    "findings"}: the layer x step map, binned
    /series?run=R&layer=L&quantity=Q   [[step, value], ...] of one layer
    /timing?run=R                  {"steps", "data_ms", "compute_ms",
                                    "host_ms", "total_ms", "retraced"}, binned

Run, layer and quantity names from a request are only ever looked up among
the names the logdir holds; a static file is served only if it is one of the
files shipped in ``gradtrace/plugin_static``.
"""

from __future__ import annotations

import json
import math
import mimetypes
import os

from tensorboard import context as tb_context
from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from . import tags
from .findings import read_findings, sort_worst_first

PLUGIN_NAME = "gradtrace"
RUN_FILE = "gradtrace.json"  # = runinfo.RUN_FILE (runinfo imports numpy)
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugin_static")
# quantity -> (tag family, statistic)
QUANTITIES = {
    "grad_rms": ("gradients", "rms"),
    "update_ratio": ("updates", "ratio"),
    "dead_frac": ("activations", "dead_frac"),
    "act_std": ("activations", "std"),
}
MAX_BINS = 400  # columns of the health map and the timing strip
SAMPLES = 1000  # points read per tag (TensorBoard downsamples server-side)
_TIMING = ("total_ms", "data_ms", "compute_ms", "host_ms", "retraced")


def _json(request, obj, code=200):
    return http_util.Respond(request, json.dumps(obj), "application/json", code=code)


def _error(request, message, code=400):
    return http_util.Respond(request, message, "text/plain", code=code)


def _bins(points_by_row, n_bins=MAX_BINS):
    """Binned means of several step series on one step axis.

    Returns (bin start steps, [[mean or None per bin] per row]).
    """
    steps = [p[0] for pts in points_by_row for p in pts]
    if not steps:
        return [], [[] for _ in points_by_row]
    lo, hi = min(steps), max(steps)
    n = min(n_bins, hi - lo + 1)
    width = (hi - lo + 1) / n
    starts = [int(lo + math.ceil(b * width)) for b in range(n)]
    rows = []
    for pts in points_by_row:
        sums, counts = [0.0] * n, [0] * n
        for step, value in pts:
            if value is None or not math.isfinite(value):
                continue
            b = min(n - 1, int((step - lo) / width))
            sums[b] += value
            counts[b] += 1
        rows.append([s / c if c else None for s, c in zip(sums, counts)])
    return starts, rows


class GradtracePlugin(base_plugin.TBPlugin):
    """TensorBoard's gradtrace tab: findings, layer x step health, timing."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context):
        self._data = context.data_provider
        self._logdir = context.logdir

    def get_plugin_apps(self):
        return {
            "/index.js": self._serve_index,
            "/static/*": self._serve_static,
            "/runs": self._serve_runs,
            "/findings": self._serve_findings,
            "/health": self._serve_health,
            "/series": self._serve_series,
            "/timing": self._serve_timing,
        }

    def is_active(self):
        return bool(self._runs(tb_context.RequestContext(), ""))

    def data_plugin_names(self):
        return ()  # gradtrace writes ordinary scalars: is_active() decides

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(
            es_module_path="/index.js", tab_name="gradtrace"
        )

    # -- runs --------------------------------------------------------------------
    def _runs(self, ctx, eid) -> dict[str, str]:
        """{gradtrace run name: TensorBoard train run name}, sorted."""
        if self._data is None or not self._logdir:
            return {}
        out = {}
        for run in self._data.list_runs(ctx, experiment_id=eid):
            name = run.run_name
            if name != tags.TRAIN_DIR and not name.endswith("/" + tags.TRAIN_DIR):
                continue
            parent = name[: -len(tags.TRAIN_DIR)].rstrip("/") or "."
            folder = os.path.join(self._logdir, parent)
            if os.path.isfile(os.path.join(folder, RUN_FILE)) or os.path.isfile(
                os.path.join(folder, tags.FINDINGS_FILE)
            ):
                out[parent] = name
        return dict(sorted(out.items()))

    def _request_run(self, request):
        """(ctx, eid, run, train run) of a request, or an error response."""
        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        run = request.args.get("run", "")
        runs = self._runs(ctx, eid)
        if run not in runs:
            return None, _error(
                request,
                f"No gradtrace run {run!r} in this logdir. Runs: {sorted(runs)}.",
                404,
            )
        return (ctx, eid, run, runs[run]), None

    def _layers(self, run) -> list[str]:
        try:
            with open(os.path.join(self._logdir, run, RUN_FILE), encoding="utf-8") as f:
                doc = json.load(f)
            return [str(d["name"]) for d in doc.get("layers", [])]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _findings(self, run) -> list[dict]:
        path = os.path.join(self._logdir, run, tags.FINDINGS_FILE)
        if not os.path.isfile(path):
            return []
        try:
            found = read_findings(path, notes=[])
        except ValueError:
            return []
        return [f.to_dict() for f in sort_worst_first(found)]

    def _read(self, ctx, eid, train_run, tag_list, samples=SAMPLES):
        """{tag: [(step, value), ...]} of the tags that exist."""
        if not tag_list:
            return {}
        data = self._data.read_scalars(
            ctx,
            experiment_id=eid,
            plugin_name="scalars",
            downsample=samples,
            run_tag_filter=provider.RunTagFilter(runs=[train_run], tags=tag_list),
        )
        series = data.get(train_run, {})
        return {
            t: [(d.step, d.value) for d in series[t]] for t in tag_list if t in series
        }

    # -- routes ------------------------------------------------------------------
    @wrappers.Request.application
    def _serve_index(self, request):
        return self._static_file(request, "index.js")

    @wrappers.Request.application
    def _serve_static(self, request):
        name = request.path.rsplit("/static/", 1)[-1]
        return self._static_file(request, name)

    def _static_file(self, request, name):
        # Only the files we ship, by exact name: no path from the request
        # ever reaches the file system.
        if name not in os.listdir(STATIC_DIR):
            return _error(request, "Not found", 404)
        path = os.path.join(STATIC_DIR, name)
        with open(path, "rb") as f:
            body = f.read()
        kind = (
            "text/javascript" if name.endswith(".js") else mimetypes.guess_type(path)[0]
        )
        return http_util.Respond(request, body, kind or "application/octet-stream")

    @wrappers.Request.application
    def _serve_runs(self, request):
        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        runs = self._runs(ctx, eid)
        return _json(request, [{"run": r, "train": t} for r, t in runs.items()])

    @wrappers.Request.application
    def _serve_findings(self, request):
        found, err = self._request_run(request)
        if err is not None:
            return err
        return _json(request, self._findings(found[2]))

    def _request_quantity(self, request):
        """(ctx, eid, run, train run, quantity) of a request, or an error."""
        found, err = self._request_run(request)
        if err is not None:
            return None, err
        q = request.args.get("quantity", "grad_rms")
        if q not in QUANTITIES:
            return None, _error(
                request, f"quantity must be one of {sorted(QUANTITIES)}."
            )
        return (*found, q), None

    @wrappers.Request.application
    def _serve_health(self, request):
        found, err = self._request_quantity(request)
        if err is not None:
            return err
        ctx, eid, run, train, q = found
        family, stat = QUANTITIES[q]
        layers = self._layers(run)
        if not layers:  # no gradtrace.json: layers as the tags name them
            names = self._data.list_scalars(
                ctx,
                experiment_id=eid,
                plugin_name="scalars",
                run_tag_filter=provider.RunTagFilter(runs=[train]),
            ).get(train, {})
            layers = [
                p[1]
                for p in map(tags.parse_layer_tag, names)
                if p and p[0] == family and p[2] == stat
            ]
        wanted = {tags.layer_tag(family, name, stat): name for name in layers}
        series = self._read(ctx, eid, train, list(wanted))
        rows = [name for name in layers if tags.layer_tag(family, name, stat) in series]
        steps, values = _bins(
            [series[tags.layer_tag(family, name, stat)] for name in rows]
        )
        return _json(
            request,
            {
                "quantity": q,
                "layers": rows,
                "steps": steps,
                "values": values,
                "findings": self._findings(run),
            },
        )

    @wrappers.Request.application
    def _serve_series(self, request):
        found, err = self._request_quantity(request)
        if err is not None:
            return err
        ctx, eid, _, train, q = found
        family, stat = QUANTITIES[q]
        tag = tags.layer_tag(family, request.args.get("layer", ""), stat)
        points = self._read(ctx, eid, train, [tag]).get(tag)
        if points is None:
            return _error(request, "No such layer in this run.", 404)
        return _json(
            request,
            [[s, v if math.isfinite(v) else None] for s, v in points],
        )

    @wrappers.Request.application
    def _serve_timing(self, request):
        found, err = self._request_run(request)
        if err is not None:
            return err
        ctx, eid, _, train = found
        names = [tags.timing_tag(f) for f in _TIMING]
        series = self._read(ctx, eid, train, names)
        steps, values = _bins([series.get(n, []) for n in names])
        out = {"steps": steps}
        out.update(zip(_TIMING, values))
        return _json(request, out)
