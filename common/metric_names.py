"""The metrics' names and labels: the one list every scorer, table, figure and check uses.

Standard library only, so the builders (which never need torch or the metric packages) read the
same names as `common.metrics`, which computes them.
"""

from __future__ import annotations

METRIC_NAMES = ("pesq", "stoi", "estoi", "si_sdr")  # against a clean reference
DNSMOS_METRICS = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808")  # no reference needed
ALL_METRICS = METRIC_NAMES + DNSMOS_METRICS
METRIC_LABELS = {
    "pesq": "PESQ-wb", "stoi": "STOI", "estoi": "ESTOI", "si_sdr": "SI-SDR (dB)",
    "dnsmos_sig": "DNSMOS SIG", "dnsmos_bak": "DNSMOS BAK", "dnsmos_ovrl": "DNSMOS OVRL",
    "dnsmos_p808": "DNSMOS P.808",
}  # fmt: skip
EVAL_SIGNALS = ("noisy", "enhanced")


def metric_label(metric: str) -> str:
    """A metric's label in tables and figures (`si_sdr` -> `SI-SDR (dB)`)."""
    return METRIC_LABELS.get(metric, metric.replace("_", " ").upper())
