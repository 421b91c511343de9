"""`corft-ros measure transport` end to end, small: a publisher process and this bench's subscriber over real DDS."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_transport_measures_raw_and_jpeg_between_two_processes():
    proc = subprocess.run(
        [sys.executable, "-m", "corft_ros.cli", "measure", "transport", "--json", "--cameras", "1", "--width", "64",
         "--height", "48", "--seconds", "1", "--codecs", "raw", "jpeg", "--noise", "0", "--dds", "default"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["bench"] == "transport" and result["size"] == "64x48" and result["cameras"] == 1
    raw, jpeg = result["results"]["0"]["raw"], result["results"]["0"]["jpeg"]
    for case in (raw, jpeg):
        assert case["sent"] > 0 and case["received"] > 0  # best effort: a loaded machine may drop some
        assert case["capture_to_decoded_ms"]["p50"] >= case["capture_to_received_ms"]["p50"] > 0
    assert raw["bytes_per_frame_mean"] > 64 * 48 * 3  # the pixels plus the CDR header and fields
    assert jpeg["bytes_per_frame_mean"] < raw["bytes_per_frame_mean"]
    assert jpeg["encode_ms"]["p50"] > 0 and "added_vs_raw_ms" in jpeg  # null when raw lost > 10 %
