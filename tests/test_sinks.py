"""The TensorBoard sink's block writer, read back event by event."""

import numpy as np
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from gradtrace.sinks.tensorboard import TensorBoardSink
from tests.helpers import event_files

NAN = float("nan")


def _events(run_dir):
    out = []
    for path in event_files(run_dir):
        for event in EventFileLoader(path).Load():
            if event.HasField("summary"):
                out.append(event)
    return out


def test_scalar_block_writes_rows_in_step_order_with_metadata_once(tmp_path):
    sink = TensorBoardSink(str(tmp_path))
    values = np.array(
        [
            [1.0, 2.0, NAN],  # a pattern seen first ...
            [3.0, NAN, NAN],  # ... another (a light step) ...
            [5.0, 6.0, NAN],  # ... the first again
            [7.0, NAN, 8.0],  # a tag seen for the first time mid-block
            [9.0, NAN, NAN],
        ]
    )
    walls = [100.0, 101.0, 102.0, 103.0, 104.0]
    sink.train.scalar_block([10, 11, 12, 13, 14], walls, ("a", "b", "c"), values)
    sink.train.scalar_block([15], [105.0], ("a", "b", "c"), [[NAN, 1.5, 2.5]])
    sink.close()
    events = _events(tmp_path / "train")
    # TensorBoard drops points of a tag that arrive with a lower step than
    # one it has: every row goes out in order.
    assert [e.step for e in events] == [10, 11, 12, 13, 14, 15]
    assert [e.wall_time for e in events] == [*walls, 105.0]
    got = [
        {
            v.tag: (float(v.tensor.float_val[0]), v.HasField("metadata"))
            for v in e.summary.value
        }
        for e in events
    ]
    assert got == [
        {"a": (1.0, True), "b": (2.0, True)},
        {"a": (3.0, False)},
        {"a": (5.0, False), "b": (6.0, False)},
        {"a": (7.0, False), "c": (8.0, True)},
        {"a": (9.0, False)},
        {"b": (1.5, False), "c": (2.5, False)},
    ]


def test_scalar_block_of_nothing_measured_writes_nothing(tmp_path):
    sink = TensorBoardSink(str(tmp_path))
    sink.train.scalar_block([0, 1], [1.0, 2.0], ("a",), [[NAN], [NAN]])
    sink.train.scalar_block([], [], ("a",), np.zeros((0, 1)))
    sink.close()
    assert _events(tmp_path / "train") == []


def test_a_steps_statistics_and_timing_go_out_as_one_event(tmp_path):
    from gradtrace.records import StatsBlock, StepStats, StepTime

    recs = [
        StepStats(s, 0, 0.5 + s, ("d",), {"grad_norm": np.array([1.0 * s])})
        for s in (4, 5, 6)
    ]
    block = StatsBlock.of(recs)
    times = [StepTime(s, 0, 9.0 + s, 1.0, 7.0, 1.0 + s, False) for s in (3, 4, 5)]
    sink = TensorBoardSink(str(tmp_path))
    # step 3's timing (its statistics went out earlier) gets an event of its
    # own; step 6's timing comes with the next block.
    sink.stats_block(block, [1.0, 2.0, 3.0], [0, 1, 2], times, [0.5, 1.5, 2.5])
    sink.close()
    events = _events(tmp_path / "train")
    by_step = {}
    for e in events:
        by_step.setdefault(e.step, []).append({v.tag for v in e.summary.value})
    assert by_step[3] == [
        {
            f"timing/{f}"
            for f in ("total_ms", "data_ms", "compute_ms", "host_ms", "retraced")
        }
    ]
    for s in (4, 5):
        (tags,) = by_step[s]
        assert {"batch_loss", "gradients/d/norm", "timing/total_ms"} <= tags
    (tags,) = by_step[6]
    assert "batch_loss" in tags and not any(t.startswith("timing/") for t in tags)
