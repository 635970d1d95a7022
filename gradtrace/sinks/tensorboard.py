"""TensorBoard event files, written inline and cheaply.

The fit loop hands over finished records (`StepStats`, `StepTime`, epoch logs,
histogram buckets, findings). Per-step scalars are the hot path (dozens of
values every step): their `Summary.Value` bytes are assembled from per-tag
prefixes computed once, and records go through TensorFlow's C++ TFRecord
writer (an event file is a TFRecord file of `Event` protos), because
TensorBoard's pure-Python writer spends ~0.4 ms per step on its pure-Python
CRC alone. Histograms are raw-encoded the same way; rare records (images,
text) are ordinary protos.

Files open lazily (no validation/ file for a run without validation), are
flushed every `FLUSH_SECS` and at every epoch end and finding, and closed by
`close()`; a killed process leaves files readable up to the last flush.
Tags come from `gradtrace.tags`.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time
import zlib

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import (
    event_pb2,
    summary_pb2,
    tensor_pb2,
    tensor_shape_pb2,
    types_pb2,
)
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import metadata as text_metadata

from .. import tags

FLUSH_SECS = 2.0
_RECORD_FRAMING = 16  # a TFRecord: length, its CRC, the data's CRC
# An event's bytes besides its summary values: wall time, step, summary
# header, TFRecord framing.
EVENT_BYTES = 9 + 6 + 4 + _RECORD_FRAMING
_WRITERS = itertools.count()  # event files opened by this process
_SCALAR_META = scalar_metadata.create_summary_metadata("", "").SerializeToString()
_HISTOGRAM_META = histogram_metadata.create_summary_metadata("", "").SerializeToString()


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    # A length-delimited protobuf field.
    return _varint((num << 3) | 2) + _varint(len(payload)) + payload


# TensorProto{dtype: DT_FLOAT, float_val: [<4 bytes>]} minus the 4 value bytes.
_SCALAR_TENSOR_HEAD = b"\x08\x01\x2a\x04"
_FLOAT = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")


def _shape(*dims):
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )


class _Run:
    """One TensorBoard run folder (train/ or validation/), opened lazily."""

    def __init__(self, path: str):
        self.path = path
        self._writer = None
        self._prefix: dict[str, tuple[bytes, bytes]] = {}
        self._seen: set[str] = set()
        self._array_cache: dict[tuple, list[bytes]] = {}
        self._last_flush = time.monotonic()
        self.bytes_written = 0  # event bytes, TFRecord framing included

    # -- hot path: scalars ---------------------------------------------------
    def _scalar_prefix(self, tag: str) -> tuple[bytes, bytes]:
        """The bytes of a Summary.Value for `tag` up to the 4 float bytes.

        (first use: with the plugin metadata; later: without; TensorBoard
        keys metadata on first sight). Values have a fixed length per tag, so
        the whole prefix, length headers included, is computed once.
        """
        p = self._prefix.get(tag)
        if p is None:
            t = _field(1, tag.encode())
            tensor_head = _varint((8 << 3) | 2) + _varint(8) + _SCALAR_TENSOR_HEAD
            first = t + _field(9, _SCALAR_META) + tensor_head
            plain = t + tensor_head
            p = (
                _varint((1 << 3) | 2) + _varint(len(first) + 4) + first,
                _varint((1 << 3) | 2) + _varint(len(plain) + 4) + plain,
            )
            self._prefix[tag] = p
        return p

    def scalar_bytes(self, tag_list) -> int:
        """Bytes the scalars of `tag_list` take in an event (seen tags)."""
        return sum(len(self._scalar_prefix(t)[1]) + 4 for t in tag_list)

    def scalars(self, step: int, wall: float, items) -> None:
        """items: iterable of (tag, float)."""
        parts = []
        pack = _FLOAT.pack
        seen = self._seen
        for tag, v in items:
            first, plain = self._scalar_prefix(tag)
            if tag in seen:
                parts.append(plain + pack(v))
            else:
                seen.add(tag)
                parts.append(first + pack(v))
        if parts:
            self._write_summary_bytes(step, wall, b"".join(parts))

    def scalar_block(self, steps, walls, tag_tuple: tuple, values) -> None:
        """One event per row, in row order: ``values[i]`` ([K, len(tag_tuple)]
        floats) at ``steps[i]``, wall time ``walls[i]``; NaN entries (not
        measured) are skipped. The hot path: for each pattern of measured
        tags, a byte template of the whole Summary is built once, and the
        float bytes of every row of the block are placed into copies of it by
        one numpy assignment. (Rows go out in order: TensorBoard drops data
        it sees arrive with a step below an earlier one.)
        """
        values = np.asarray(values, dtype=np.float64)
        if not values.size:
            return
        mask = ~np.isnan(values)
        if (mask == mask[0]).all():  # the usual case: one pattern
            which = np.zeros(len(values), dtype=np.int64)
            patterns = [mask[0]]
        else:
            index: dict[bytes, int] = {}
            which = np.array([index.setdefault(m.tobytes(), len(index)) for m in mask])
            patterns = [mask[np.flatnonzero(which == p)[0]] for p in range(len(index))]
        events = [None] * len(values)  # row -> event bytes, or None: write slowly
        pack = _DOUBLE.pack
        for p, pattern in enumerate(patterns):
            rows = np.flatnonzero(which == p)
            selected = [t for t, m in zip(tag_tuple, pattern) if m]
            if not selected:
                for r in rows:
                    events[r] = b""
                continue
            template = self._template(tag_tuple, pattern, selected)
            if template is None:  # a tag's first sight: with its metadata
                continue
            body, at = template
            buf = np.repeat(body[None, :], len(rows), axis=0)
            floats = values[np.ix_(rows, np.flatnonzero(pattern))].astype("<f4")
            buf[:, at] = floats.view(np.uint8)
            head = b"\x2a" + _varint(buf.shape[1])  # the event's summary field
            for k, r in enumerate(rows.tolist()):
                events[r] = (
                    b"\x09"
                    + pack(float(walls[r]))
                    + b"\x10"
                    + _varint(int(steps[r]) & 0xFFFFFFFFFFFFFFFF)
                    + head
                    + buf[k].tobytes()
                )
        for r, event in enumerate(events):
            if event is None:
                row = values[r]
                self.scalars(
                    int(steps[r]),
                    float(walls[r]),
                    [(t, v) for t, v in zip(tag_tuple, row.tolist()) if v == v],
                )
            elif event:
                self._write_event(event)

    def _template(self, tag_tuple, pattern, selected):
        """(uint8 Summary bytes with zeroed floats, byte index of each float
        byte) for these tags, once all of them have been seen."""
        key = (tag_tuple, pattern.tobytes())
        t = self._array_cache.get(key)
        if t is None:
            if not all(tag in self._seen for tag in selected):
                return None
            parts, at, pos = [], [], 0
            for tag in selected:
                prefix = self._scalar_prefix(tag)[1]
                parts.append(prefix + b"\0\0\0\0")
                pos += len(prefix)
                at.extend(range(pos, pos + 4))
                pos += 4
            t = (np.frombuffer(b"".join(parts), dtype=np.uint8), np.array(at))
            self._array_cache[key] = t
        return t

    # -- rare records ----------------------------------------------------------
    def _meta(self, tag, factory):
        if tag in self._seen:
            return None
        self._seen.add(tag)
        return factory()

    def histogram_array(self, step: int, wall: float, tag_list: tuple, packed) -> None:
        """Histograms in TensorBoard's tensor layout, raw-encoded: a
        TensorProto {dtype: DT_DOUBLE, shape: [bins, 3], tensor_content}."""
        buckets = histogram_buckets(packed)  # [n, bins, 3] float64
        bins = buckets.shape[1]
        shape = _field(2, b"\x08" + _varint(bins)) + _field(2, b"\x08\x03")
        tensor_head = b"\x08\x02" + _field(2, shape)  # dtype DT_DOUBLE, shape
        parts = []
        for tag, rows in zip(tag_list, buckets):
            head = _field(1, tag.encode())
            if tag not in self._seen:
                self._seen.add(tag)
                head += _field(9, _HISTOGRAM_META)
            tensor = tensor_head + _field(4, rows.tobytes())
            parts.append(_field(1, head + _field(8, tensor)))
        self._write_summary_bytes(step, wall, b"".join(parts))

    def image_value(self, tag, png: bytes, width: int, height: int):
        md = self._meta(
            tag,
            lambda: image_metadata.create_summary_metadata(
                "", "", converted_to_tensor=True
            ),
        )
        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING,
            string_val=[str(width).encode(), str(height).encode(), png],
            tensor_shape=_shape(3),
        )
        return summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=md)

    def text_value(self, tag, text: str):
        md = self._meta(tag, lambda: text_metadata.create_summary_metadata("", ""))
        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING,
            string_val=[text.encode("utf-8")],
            tensor_shape=_shape(),
        )
        return summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=md)

    def values(self, step: int, wall: float, values) -> None:
        if values:
            summary = summary_pb2.Summary(value=values).SerializeToString()
            self._write_summary_bytes(step, wall, summary)

    # -- the file ------------------------------------------------------------
    def _open(self):
        os.makedirs(self.path, exist_ok=True)
        # Unique per writer: two writers of one process in the same second
        # (quick resumed fits into one logdir) must not overwrite each
        # other's file. Names sort in creation order, as TensorBoard reads them.
        name = "events.out.tfevents.%d.%s.%d.%06d.gradtrace.v2" % (
            int(time.time()),
            socket.gethostname(),
            os.getpid(),
            next(_WRITERS),
        )
        self._writer = tf.io.TFRecordWriter(os.path.join(self.path, name))
        first = event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
        self._writer.write(first.SerializeToString())
        self._writer.flush()

    def _write_summary_bytes(self, step: int, wall: float, summary: bytes) -> None:
        self._write_event(
            b"\x09"
            + _DOUBLE.pack(wall)
            + b"\x10"
            + _varint(int(step) & 0xFFFFFFFFFFFFFFFF)
            + _field(5, summary)
        )

    def _write_event(self, event: bytes) -> None:
        if self._writer is None:
            self._open()
        self._writer.write(event)
        self.bytes_written += len(event) + _RECORD_FRAMING
        now = time.monotonic()
        if now - self._last_flush > FLUSH_SECS:
            self.flush()

    def flush(self):
        if self._writer is not None:
            self._writer.flush()
        self._last_flush = time.monotonic()

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class TensorBoardSink:
    """Writes gradtrace's records under `logdir/train` and `logdir/validation`."""

    def __init__(self, logdir: str):
        self.train = _Run(os.path.join(logdir, tags.TRAIN_DIR))
        self.validation = _Run(os.path.join(logdir, tags.VALIDATION_DIR))
        self._tag_cache: dict[tuple, list] = {}

    def _layer_tags(self, layers: tuple[str, ...]) -> tuple[str, ...]:
        """Every per-layer tag, field-major (SCALAR_TAGS order)."""
        t = self._tag_cache.get(layers)
        if t is None:
            t = tuple(
                tags.layer_tag(family, name, stat)
                for _, family, stat in tags.SCALAR_TAGS
                for name in layers
            )
            self._tag_cache[layers] = t
        return t

    def stats_block(
        self,
        block,
        walls,
        rows,
        times=(),
        time_walls=(),
        extra=None,
        with_loss=True,
        layer_every=1,
    ) -> None:
        """Per-step scalars of `block` (a `records.StatsBlock`) at `rows`:
        the model-wide ones (batch_loss unless `with_loss` is False, the
        `extra` scalars — ``(tags, [K, len(tags)] values)`` of every step of
        the block —, the global gradient norm, clipping, the loss scale) and,
        at steps that are a multiple of `layer_every`, every per-layer tag;
        with the `timing/*` tags of the `StepTime`s in `times` of the same
        steps, in one event per step (`times` of other steps: events of
        their own, with wall times `time_walls`)."""
        rows = np.asarray(rows, dtype=np.int64)
        steps = block.steps[rows]
        wide_tags, wide, layer_tags, layer = self._columns(block, extra, with_loss)
        tag_tuple = wide_tags + layer_tags
        cols = [c[rows] for c in wide]
        if layer:
            keep = (steps % layer_every == 0)[:, None]
            cols += [np.where(keep, c[rows], np.nan) for c in layer]
        at = {int(s): k for k, s in enumerate(steps.tolist())}
        timing = np.full((len(rows), len(_TIME_FIELDS)), np.nan)
        alone, alone_walls = [], []
        for t, wall in zip(times, time_walls):
            k = at.get(t.step)
            if k is None:
                alone.append(t)
                alone_walls.append(wall)
            else:
                timing[k] = _time_row(t)
        if times and len(alone) < len(times):
            tag_tuple += _TIME_TAGS
            cols.append(timing)
        if rows.size and cols:
            self.train.scalar_block(
                steps, np.asarray(walls)[rows], tag_tuple, np.hstack(cols)
            )
        self.times_block(alone, alone_walls)

    def _columns(self, block, extra, with_loss):
        """(model-wide tags, their [K, n] columns, per-layer tags, theirs)."""
        wide_tags, wide, layer_tags, layer = (), [], (), []
        if with_loss:
            wide.append(block.loss[:, None])
            wide_tags = (tags.BATCH_LOSS,)
        if extra is not None and extra[0]:
            wide_tags += tuple(extra[0])
            wide.append(np.asarray(extra[1], dtype=np.float64))
        if block.layers and block.values.keys() - {"n_params"}:
            layer_tags = self._layer_tags(block.layers)
            layer = [block.field(field) for field, _, _ in tags.SCALAR_TAGS]
            if "grad_norm" in block.values:
                wide_tags += (tags.GLOBAL_NORM,)
                wide.append(block.global_grad_norm[:, None])
        if block.clipped is not None:
            wide_tags += (tags.CLIPPED,)
            wide.append(block.clipped[:, None])
        if block.loss_scale is not None:
            wide_tags += (tags.LOSS_SCALE,)
            wide.append(block.loss_scale[:, None])
        return wide_tags, wide, layer_tags, layer

    def block_bytes(self, block, extra=None, with_loss=True, timing=True):
        """(bytes of one step's model-wide event, of its per-layer scalars)
        as `stats_block` writes them (after each tag's first sight)."""
        wide_tags, _, layer_tags, _ = self._columns(block, extra, with_loss)
        if timing:
            wide_tags += _TIME_TAGS
        return (
            EVENT_BYTES + self.train.scalar_bytes(wide_tags),
            self.train.scalar_bytes(layer_tags),
        )

    @property
    def bytes_written(self) -> int:
        return self.train.bytes_written + self.validation.bytes_written

    def times_block(self, times, walls) -> None:
        """`timing/*` scalars of `StepTime`s (wall times `walls`), one event
        per step."""
        if not times:
            return
        self.train.scalar_block(
            [t.step for t in times],
            walls,
            _TIME_TAGS,
            np.array([_time_row(t) for t in times], dtype=np.float64),
        )

    def histograms(self, step: int, tag_list, packed: np.ndarray) -> None:
        """`packed`: [n, 2 + bins] rows of `probes.stats.histogram`, one per tag."""
        if len(tag_list):
            self.train.histogram_array(step, time.time(), tuple(tag_list), packed)

    def heatmap(self, tag: str, step: int, matrix: np.ndarray) -> None:
        rgb = heatmap_rgb(matrix)
        run = self.train
        run.values(
            step,
            time.time(),
            [run.image_value(tag, encode_png(rgb), rgb.shape[1], rgb.shape[0])],
        )

    def epoch(self, epoch: int, logs: dict) -> None:
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        wall = time.time()
        for run, d in ((self.train, train), (self.validation, val)):
            run.scalars(
                epoch,
                wall,
                [(tags.epoch_tag(k), float(v)) for k, v in d.items() if _is_number(v)],
            )
            run.flush()

    def finding(self, step: int, text: str) -> None:
        run = self.train
        run.values(step, time.time(), [run.text_value(tags.FINDINGS, text)])
        run.flush()

    def flush(self) -> None:
        self.train.flush()
        self.validation.flush()

    def close(self) -> None:
        self.train.close()
        self.validation.close()


_TIME_FIELDS = tags.TIMING_FIELDS + ("peak_memory_mb",)
_TIME_TAGS = tuple(tags.timing_tag(f) for f in _TIME_FIELDS)


def _time_row(t) -> list:
    # None (no peak memory off a GPU) becomes NaN: not written.
    return [getattr(t, f) for f in _TIME_FIELDS]


def histogram_buckets(packed) -> np.ndarray:
    """[lo, hi, counts...] rows (`probes.stats.histogram`) -> [..., bins, 3]
    rows of (left edge, right edge, count), TensorBoard's histogram layout."""
    packed = np.asarray(packed, dtype=np.float64)
    lo, hi, counts = packed[..., :1], packed[..., 1:2], packed[..., 2:]
    bins = counts.shape[-1]
    edges = lo + (hi - lo) * (np.arange(bins + 1) / bins)
    return np.stack([edges[..., :-1], edges[..., 1:], counts], axis=-1)


def _is_number(v):
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


# -- images without a dependency: a colormap and a minimal PNG encoder -------

_VIRIDIS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
    dtype=np.float64,
)


def heatmap_rgb(matrix: np.ndarray, cell: int = 8) -> np.ndarray:
    """[rows, cols] values -> uint8 RGB image, NaN drawn grey, min..max scaled."""
    m = np.asarray(matrix, dtype=np.float64)
    finite = np.isfinite(m)
    lo, hi = (m[finite].min(), m[finite].max()) if finite.any() else (0.0, 1.0)
    t = np.where(finite, (m - lo) / (hi - lo if hi > lo else 1.0), 0.0)
    pos = t * (len(_VIRIDIS) - 1)
    i = np.clip(np.floor(pos).astype(int), 0, len(_VIRIDIS) - 2)
    frac = (pos - i)[..., None]
    rgb = _VIRIDIS[i] * (1 - frac) + _VIRIDIS[i + 1] * frac
    rgb[~finite] = 128
    rgb = np.repeat(np.repeat(rgb, cell, axis=0), max(1, cell // 4), axis=1)
    return rgb.astype(np.uint8)


def encode_png(rgb: np.ndarray) -> bytes:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 1))
        + chunk(b"IEND", b"")
    )
