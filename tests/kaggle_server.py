"""A loopback stand-in for the Kaggle API, for driving the real `kaggle` CLI offline.

The CLI is pointed at it with `KAGGLE_API_ENVIRONMENT=LOCALHOST` (calls go to
`http://localhost/api/v1/<service>/<Method>`) and `HTTP_PROXY=http://127.0.0.1:PORT`, so the
calls arrive here as absolute-URL proxy requests. It implements what `kernels push / status /
output / pull` and `datasets status` use (SaveKernel, GetKernelSessionStatus,
ListKernelSessionOutput with paging and plain-GET file downloads, GetKernel, GetDatasetStatus)
plus token introspection, checks the credentials, and records every request.

It can also behave the way the real service does where that hurts a client:
- `unknown_kernel_code=403`: "Permission 'kernels.get' was denied" for a kernel that does not
  exist (Kaggle's answer since kaggle-cli PR #951), instead of 404;
- `stale_calls=N`: right after a push, the next N unlabelled status calls, and the next N
  unlabelled output listings, still describe the previous version's session;
- version labels (`versionLabel: "vN"`, sent by kaggle 2.2.5 for `owner/slug/N`) select that
  version's session, with no staleness;
- a dataset or kernel source it does not know is reported in `invalidDatasetSources` /
  `invalidKernelSources` and the push goes ahead anyway;
- `datasets create / version`: StartBlobUpload hands out a token and a `createUrl`, the bytes
  arrive by PUT, CreateDataset / CreateDatasetVersion take the tokens; an uploaded `.zip` or
  `.tar` is unpacked into a folder of its name, as Kaggle's backend does for `-r zip|tar`
  (kaggle-cli PR #111); a refused upload answers HTTP 200 with `status: "error"` and an `error`
  (`reject_next_dataset`), which the CLI prints and exits 0 on; a new version goes through
  `dataset_statuses` (one per GetDatasetStatus call) before READY.

It binds 127.0.0.1 only, serves from a daemon thread and stops by itself after `timeout_s`.

Standalone, for a demo of the whole push -> wait -> pull -> report flow:

    python -m tests.kaggle_server --port 8765     # prints the environment to export
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import os
import re
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

DEFAULT_STATUSES = ("QUEUED", "RUNNING", "COMPLETE")
# kagglesdk DatabundleVersionStatus names a new dataset version passes through, then READY.
DEFAULT_DATASET_STATUSES = ("BLOBS_RECEIVED", "BLOBS_DECOMPRESSED", "READY")
STORAGE_ERROR_BODY = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
    b"<Message>Access denied.</Message></Error>"
)


@dataclass
class Received:
    method: str
    call: str  # "kernels.KernelsApiService/SaveKernel" or the GET path
    body: dict[str, Any] | None
    authorization: str | None


@dataclass
class RunPlan:
    """What the next pushed version will do: its states, failure message and outputs."""

    statuses: tuple[str, ...] = DEFAULT_STATUSES
    failure_message: str | None = None
    outputs: dict[str, bytes] | None = None  # None: canned outputs (summary.json, checkpoints)
    log: str | None = None
    broken: tuple[str, ...] = ()  # files whose download answers 403 with a storage error body


@dataclass
class FakeRun:
    version: int
    request: dict[str, Any]
    plan: RunPlan
    outputs: dict[str, bytes]
    log: str
    started: float = field(default_factory=time.monotonic)
    status_calls: int = 0


@dataclass
class FakeBlob:
    name: str
    length: int
    data: bytes | None = None  # None until its PUT arrived


@dataclass
class FakeDatasetVersion:
    number: int
    files: dict[str, bytes]  # path in the dataset (archives unpacked) -> bytes
    request: dict[str, Any]
    statuses: tuple[str, ...]
    status_calls: int = 0


@dataclass
class FakeDataset:
    ref: str
    versions: list[FakeDatasetVersion] = field(default_factory=list)

    @property
    def files(self) -> dict[str, bytes]:
        return self.versions[-1].files


def unpack_blob(name: str, data: bytes) -> dict[str, bytes]:
    """A blob as the dataset shows it: an archive becomes a folder named after it."""
    for ext, opener in ((".zip", "zip"), (".tar", "tar")):
        if name.endswith(ext):
            folder = name[: -len(ext)]
            if opener == "zip":
                with zipfile.ZipFile(io.BytesIO(data)) as z:
                    return {
                        f"{folder}/{i.filename}": z.read(i) for i in z.infolist() if not i.is_dir()
                    }
            with tarfile.open(fileobj=io.BytesIO(data)) as t:
                out = {}
                for member in t.getmembers():
                    if not member.isfile():
                        continue  # a symlink in a tar is not its target's bytes
                    extracted = t.extractfile(member)
                    out[f"{folder}/{member.name}"] = extracted.read() if extracted else b""
                return out
    return {name: data}


# --------------------------------------------------------------------------- canned outputs


def _si_sdr(ref, est) -> float:
    import numpy as np

    alpha = np.dot(est, ref) / np.dot(ref, ref)
    target = alpha * ref
    return float(10 * np.log10(np.sum(target**2) / np.sum((est - target) ** 2)))


def _stats(values: list[float]) -> dict[str, Any]:
    import numpy as np

    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


@dataclass
class DemoEvaluation:
    """What a demo "run" leaves: the metrics summary, its per-file CSV and example audio."""

    summary: dict[str, Any]
    csv: bytes
    examples: dict[str, bytes]  # name under the outputs folder -> bytes


_METRICS_CACHE: dict[int, DemoEvaluation] = {}


def _wav_bytes(x: Any, sr: int) -> bytes:
    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(x, -1, 1), sr, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def demo_evaluation(n_files: int = 2, seed: int = 0) -> DemoEvaluation:
    """Metrics (PESQ, STOI, ESTOI, SI-SDR) measured on synthetic voiced signals, per file and
    summarised, with the signals saved as listening examples (as the notebooks save theirs).

    "noisy" is the signal plus white noise at 5 dB SNR; "enhanced" is the same signal plus the
    same noise 10 dB quieter. No model is involved: the point is that the numbers the
    leaderboard and the report show are really computed from waveforms, even in a demo.
    """
    if seed in _METRICS_CACHE:
        return _METRICS_CACHE[seed]
    import csv

    import numpy as np
    from pesq import pesq
    from pystoi import stoi

    from common.metric_names import METRIC_NAMES

    sr = 16000
    t = np.arange(3 * sr) / sr
    rng = np.random.default_rng(seed)
    metrics = METRIC_NAMES
    per: dict[str, dict[str, list[float]]] = {
        g: {m: [] for m in metrics} for g in ("noisy", "enhanced")
    }
    examples: dict[str, bytes] = {}
    index: dict[str, dict[str, str]] = {}
    names = [f"demo_{i}.wav" for i in range(n_files)]
    for i, name in enumerate(names):
        f0 = 110 + 35 * i + 25 * np.sin(2 * np.pi * 0.7 * t)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
        envelope = np.clip(np.sin(2 * np.pi * 2.5 * t + i), 0, None) ** 0.5
        clean = voiced * envelope
        clean = 0.1 * clean / np.sqrt(np.mean(clean**2))
        noise = rng.standard_normal(clean.size)
        noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2))
        signals = {
            "noisy": clean + noise * 10 ** (-5 / 20),
            "enhanced": clean + noise * 10 ** (-15 / 20),
        }
        for group, x in signals.items():
            per[group]["pesq"].append(float(pesq(sr, clean, x, "wb")))
            per[group]["stoi"].append(float(stoi(clean, x, sr, extended=False)))
            per[group]["estoi"].append(float(stoi(clean, x, sr, extended=True)))
            per[group]["si_sdr"].append(_si_sdr(clean, x))
        index[name] = {}
        for signal, x in {**signals, "clean": clean}.items():
            rel = f"{i + 1:02d}_demo_{i}.{signal}.wav"
            examples[f"examples/{rel}"] = _wav_bytes(x, sr)
            index[name][signal] = rel
    examples["examples/index.json"] = json.dumps(
        {"seconds": 3.0, "sample_rate": sr, "files": index}, indent=2
    ).encode()
    summary: dict[str, Any] = {"count": n_files, "noisy": {}, "enhanced": {}, "delta": {}}
    rows = [{"file": name, "seconds": 3.0} for name in names]
    for m in metrics:
        summary["noisy"][m] = _stats(per["noisy"][m])
        summary["enhanced"][m] = _stats(per["enhanced"][m])
        deltas = [e - n for e, n in zip(per["enhanced"][m], per["noisy"][m])]
        summary["delta"][m] = _stats(deltas)
        for row, n, e, d in zip(rows, per["noisy"][m], per["enhanced"][m], deltas):
            row.update({f"noisy_{m}": n, f"enhanced_{m}": e, f"delta_{m}": d})
    summary["failures"] = []
    if not all(
        math.isfinite(v["mean"]) for g in ("noisy", "enhanced") for v in summary[g].values()
    ):
        raise RuntimeError("demo metrics are not finite")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) + ["misaligned", "failures"])
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "misaligned": "", "failures": ""})
    _METRICS_CACHE[seed] = DemoEvaluation(summary, text.getvalue().encode(), examples)
    return _METRICS_CACHE[seed]


def measured_demo_metrics(n_files: int = 2, seed: int = 0) -> dict[str, Any]:
    """The metrics summary of `demo_evaluation`."""
    return demo_evaluation(n_files, seed).summary


def demo_history(version: int) -> dict[str, Any]:
    """A short made-up training history (the fake trains nothing), so that curves have points."""
    epochs = [
        {
            "epoch": e,
            "step": 10 * e,
            "train_loss": 1.0 / (e + version),
            "val_loss": 1.2 / (e + version),
            "val_si_sdr": 5.0 + e + version,
            "lr": 1e-3 / e,
            "elapsed_seconds": 30.0 * e,
        }
        for e in range(1, 4)
    ]
    return {"note": "made up by tests/kaggle_server.py", "history": epochs}


def _checkpoint_bytes(marker: int) -> tuple[bytes, int]:
    import torch

    state = {"format": "fake-kaggle-checkpoint", "epoch": 0, "model": {"w": torch.zeros(4, 4)}}
    state["marker"] = marker
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), 16


def canned_outputs(ref: str, version: int, notebook_text: str) -> dict[str, bytes]:
    """What a finished run leaves in /kaggle/working: summary.json, checkpoints, history."""
    slug = ref.split("/", 1)[1]
    # The training notebook names its recipe (`recipe = 'dpt'`); others may name a model.
    m = re.search(r"\b(?:recipe|model(?:_name)?)\s*=\s*\\?[\"']([\w-]+)\\?[\"']", notebook_text)
    checkpoint, params = _checkpoint_bytes(version)
    summary = {
        "model": m.group(1) if m else slug,
        "params": params,
        "config": {"note": "written by tests/kaggle_server.py"},
        "data": "synthetic voiced signals (fake Kaggle server; enhanced = noise -10 dB, no model)",
        "device": "fake Kaggle (loopback test server)",
        "epochs": 0,
        "best_epoch": None,
        "train_seconds": 0.0,
        "git_commit": None,
        "kernel": f"{ref}/{version}",
        "metrics": measured_demo_metrics(),
    }
    evaluation = demo_evaluation()
    return {
        "summary.json": json.dumps(summary, indent=2).encode(),
        "eval_per_file.csv": evaluation.csv,
        "last.pt": checkpoint,
        "best.pt": checkpoint,
        "history.json": json.dumps(demo_history(version)).encode(),
        **evaluation.examples,
    }


# --------------------------------------------------------------------------- the server


class FakeKaggle:
    """The fake API. Use as a context manager; `client_env(home)` gives the CLI's environment."""

    def __init__(
        self,
        username: str = "tester",
        key: str = "fake-key",
        token: str | None = None,
        output_page_size: int = 2,
        seconds_per_state: float | None = None,
        timeout_s: float = 120.0,
        port: int = 0,
        unknown_kernel_code: int = 404,
        stale_calls: int = 0,
        datasets: tuple[str, ...] | None = None,
        dataset_statuses: tuple[str, ...] = DEFAULT_DATASET_STATUSES,
        unknown_dataset_code: int = 404,
    ) -> None:
        self.username, self.key, self.token = username, key, token
        self.unknown_kernel_code = unknown_kernel_code
        self.stale_calls = stale_calls
        # What a new account sees: the team's public paired dataset, nothing of its own.
        default = ("earth16/libri-speech-noise-dataset",)
        self.datasets = set(default if datasets is None else datasets)
        self.dataset_statuses = dataset_statuses
        self.unknown_dataset_code = unknown_dataset_code
        self.uploads: dict[str, FakeDataset] = {}  # datasets created through the API
        self.blobs: dict[str, FakeBlob] = {}
        self._dataset_rejections: list[str] = []
        self._stale_left: dict[tuple[str, str], int] = {}  # (ref, method) -> stale answers left
        self._listing: dict[str, FakeRun] = {}
        self.output_page_size = output_page_size
        self.seconds_per_state = seconds_per_state  # None: each status call advances one state
        self.timeout_s = timeout_s
        self.kernels: dict[str, list[FakeRun]] = {}
        self.requests: list[Received] = []
        self._plans: list[RunPlan] = []
        self._rejections: list[str] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # --- life cycle
    def start(self) -> FakeKaggle:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.timeout_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None and self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeKaggle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting
    def plan_next_run(self, **kwargs: Any) -> RunPlan:
        plan = RunPlan(**kwargs)
        self._plans.append(plan)
        return plan

    def reject_next_push(self, message: str) -> None:
        self._rejections.append(message)

    def reject_next_dataset(self, message: str) -> None:
        """The next CreateDataset / CreateDatasetVersion answers 200 with this error."""
        self._dataset_rejections.append(message)

    def add_existing_kernel(self, ref: str, plan: RunPlan | None = None) -> FakeRun:
        """A kernel that already has a version (pushed from the Kaggle UI, say)."""
        plan = plan or RunPlan(statuses=("COMPLETE",))
        return self._new_version(ref, {"slug": ref, "text": ""}, plan)

    def calls(self, name: str) -> list[Received]:
        return [r for r in self.requests if r.call.endswith("/" + name) or r.call == name]

    def client_env(self, home: Path, credentials: bool = True) -> dict[str, str]:
        """The environment for the real CLI: loopback only, temp HOME, test credentials."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
        for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            env.pop(k, None)
            env.pop(k.lower(), None)
        proxy = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        env.update(
            {
                "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
                "HTTP_PROXY": proxy,
                "http_proxy": proxy,
                # Anything https is sent here too, and fails: nothing can reach the internet.
                "HTTPS_PROXY": proxy,
                "https_proxy": proxy,
                "NO_PROXY": "",
                "no_proxy": "",
                "HOME": str(home),
                "KAGGLE_CONFIG_DIR": str(home / ".kaggle"),
            }
        )
        if credentials:
            env["KAGGLE_USERNAME"], env["KAGGLE_KEY"] = self.username, self.key
        return env

    # --- state
    def _new_version(self, ref: str, request: dict[str, Any], plan: RunPlan) -> FakeRun:
        runs = self.kernels.setdefault(ref, [])
        version = len(runs) + 1
        outputs = plan.outputs
        if outputs is None:
            outputs = canned_outputs(ref, version, request.get("text", ""))
        log = plan.log if plan.log is not None else f"[fake] {ref} v{version} ran\n"
        run = FakeRun(version, request, plan, dict(outputs), log)
        runs.append(run)
        return run

    def _state(self, run: FakeRun) -> str:
        statuses = run.plan.statuses
        if self.seconds_per_state is None:
            index = run.status_calls
        else:
            index = int((time.monotonic() - run.started) / self.seconds_per_state)
        run.status_calls += 1
        return statuses[min(index, len(statuses) - 1)]

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        kind, _, value = header.partition(" ")
        if kind == "Basic":
            try:
                return base64.b64decode(value).decode() == f"{self.username}:{self.key}"
            except (ValueError, UnicodeDecodeError):
                return False
        return kind == "Bearer" and self.token is not None and value == self.token

    def handle_api(self, call: str, body: dict[str, Any], auth: str | None) -> tuple[int, Any]:
        if call == "security.OAuthService/IntrospectToken":
            active = self.token is not None and body.get("token") == self.token
            return 200, {"active": active, "username": self.username if active else ""}
        if not self._authorized(auth):
            return 401, {"code": 401, "message": "Unauthenticated"}
        service, _, method = call.partition("/")
        if call == "blobs.BlobApiService/StartBlobUpload":
            token = f"blob-{len(self.blobs) + 1}"
            name = str(body.get("name", ""))
            self.blobs[token] = FakeBlob(name, int(body.get("contentLength") or 0))
            return 200, {"token": token, "createUrl": f"http://localhost/fake-upload/{token}"}
        if service == "datasets.DatasetApiService":
            return self._dataset_call(method, body)
        if service != "kernels.KernelsApiService":
            return 404, {"code": 404, "message": f"not implemented here: {call}"}
        if method == "SaveKernel":
            return self._save_kernel(body)
        ref = f"{body.get('userName', '')}/{body.get('kernelSlug', '')}"
        runs = self.kernels.get(ref)
        if not runs:
            if self.unknown_kernel_code == 403:
                return 403, {"code": 403, "message": "Permission 'kernels.get' was denied"}
            return 404, {"code": 404, "message": f"Notebook {ref} not found"}
        run = self._session(ref, runs, method, body)
        if run is None:
            label = body.get("versionLabel")
            return 404, {"code": 404, "message": f"Notebook {ref} version {label} not found"}
        if method == "GetKernelSessionStatus":
            state = self._state(run)
            answer = {"status": state}
            if state == "ERROR" and run.plan.failure_message:
                answer["failureMessage"] = run.plan.failure_message
            return 200, answer
        if method == "ListKernelSessionOutput":
            return 200, self._list_output(ref, run, body)
        if method == "GetKernel":
            slug = ref.split("/", 1)[1]
            blob = {"source": run.request.get("text", ""), "language": "python"}
            blob.update({"kernelType": "notebook", "slug": slug})
            meta = {"ref": ref, "title": run.request.get("newTitle", slug), "slug": slug}
            meta["currentVersionNumber"] = run.version
            return 200, {"blob": blob, "metadata": meta}
        return 404, {"code": 404, "message": f"not implemented here: {call}"}

    # --- datasets
    def _dataset_call(self, method: str, body: dict[str, Any]) -> tuple[int, Any]:
        if method == "CreateDataset":
            ref = f"{body.get('ownerSlug', '')}/{body.get('slug', '')}"
            return self._new_dataset_version(ref, body, body.get("files") or [], create=True)
        if method == "CreateDatasetVersion":
            ref = f"{body.get('ownerSlug', '')}/{body.get('datasetSlug', '')}"
            inner = body.get("body") or {}
            return self._new_dataset_version(ref, body, inner.get("files") or [], create=False)
        ref = f"{body.get('ownerSlug', '')}/{body.get('datasetSlug', '')}"
        if ref not in self.datasets:
            if self.unknown_dataset_code == 403:
                return 403, {"code": 403, "message": "Permission 'datasets.get' was denied"}
            return 404, {"code": 404, "message": f"Dataset {ref} not found"}
        upload = self.uploads.get(ref)
        if method == "GetDatasetStatus":
            if upload is None:
                return 200, {"status": "READY"}
            version = upload.versions[-1]
            index = min(version.status_calls, len(version.statuses) - 1)
            version.status_calls += 1
            return 200, {"status": version.statuses[index]}
        if method == "GetDataset":
            number = upload.versions[-1].number if upload else 1
            return 200, {"ref": ref, "title": ref, "currentVersionNumber": number}
        return 404, {"code": 404, "message": f"not implemented here: datasets {method}"}

    def _new_dataset_version(
        self, ref: str, body: dict[str, Any], files: list[dict[str, Any]], create: bool
    ) -> tuple[int, Any]:
        def refused(message: str) -> tuple[int, Any]:
            return 200, {"ref": "", "url": "", "status": "error", "error": message}

        if self._dataset_rejections:
            return refused(self._dataset_rejections.pop(0))
        if not ref.startswith(self.username + "/"):
            return refused(f"You cannot create or update datasets for {ref.split('/')[0]!r}")
        if create and ref in self.datasets:
            return refused(f"The requested slug {ref!r} is already in use by a dataset.")
        if not create and ref not in self.uploads:
            return 404, {"code": 404, "message": f"Dataset {ref} not found"}
        if create and not body.get("licenseName"):
            return refused("A license is required")
        content: dict[str, bytes] = {}
        for f in files:
            blob = self.blobs.get(str(f.get("token", "")))
            if blob is None or blob.data is None or len(blob.data) != blob.length:
                return refused(f"Blob token {f.get('token')!r} has no complete upload")
            content.update(unpack_blob(blob.name, blob.data))
        if not content:
            return refused("A dataset version needs at least one file")
        upload = self.uploads.setdefault(ref, FakeDataset(ref))
        number = len(upload.versions) + 1
        upload.versions.append(FakeDatasetVersion(number, content, body, self.dataset_statuses))
        self.datasets.add(ref)
        return 200, {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "ok"}

    def handle_upload(self, path: str, data: bytes) -> int:
        m = re.match(r"^/fake-upload/([\w-]+)$", path)
        blob = self.blobs.get(m.group(1)) if m else None
        if blob is None:
            return 404
        blob.data = data
        return 200

    def _session(self, ref: str, runs: list[FakeRun], method: str, body: dict) -> FakeRun | None:
        """The version a call is about: the labelled one, else the latest, except that right
        after a push the unlabelled status and outputs lag behind (`stale_calls`). Later pages
        of an output listing stay with the version of its first page."""
        label = body.get("versionLabel")
        if label:
            return next((r for r in runs if f"v{r.version}" == label), None)
        if method == "ListKernelSessionOutput" and body.get("pageToken"):
            return self._listing.get(ref, runs[-1])
        run = runs[-1]
        left = self._stale_left.get((ref, method), 0)
        if left > 0:
            self._stale_left[(ref, method)] = left - 1
            run = runs[-2] if len(runs) > 1 else run
        if method == "ListKernelSessionOutput":
            self._listing[ref] = run
        return run

    def _save_kernel(self, body: dict[str, Any]) -> tuple[int, Any]:
        ref = str(body.get("slug") or "")
        if self._rejections:
            return 200, {"ref": "", "url": "", "error": self._rejections.pop(0)}
        if ref.count("/") != 1 or not ref.startswith(self.username + "/"):
            return 200, {"ref": "", "url": "", "error": f"Cannot push to {ref!r}"}
        plan = self._plans.pop(0) if self._plans else RunPlan()
        invalid_datasets = [
            d for d in body.get("datasetDataSources") or [] if d not in self.datasets
        ]
        invalid_kernels = [k for k in body.get("kernelDataSources") or [] if k not in self.kernels]
        run = self._new_version(ref, body, plan)
        for method in ("GetKernelSessionStatus", "ListKernelSessionOutput"):
            self._stale_left[(ref, method)] = self.stale_calls
        url = f"http://localhost/code/{ref}"
        answer = {"ref": "/code/" + ref, "url": url, "versionNumber": run.version}
        if invalid_datasets:
            answer["invalidDatasetSources"] = invalid_datasets
        if invalid_kernels:
            answer["invalidKernelSources"] = invalid_kernels
        return 200, answer

    def _list_output(self, ref: str, run: FakeRun, body: dict[str, Any]) -> dict[str, Any]:
        names = sorted(run.outputs)
        size = min(int(body.get("pageSize") or 20), self.output_page_size)
        start = int(body.get("pageToken") or 0)
        page = names[start : start + size]
        base = f"http://localhost/fake-storage/{ref}/{run.version}/"
        answer: dict[str, Any] = {
            "files": [{"fileName": n, "url": base + quote(n)} for n in page],
            "log": run.log,
        }
        if start + size < len(names):
            answer["nextPageToken"] = str(start + size)
        return answer

    def handle_download(self, path: str) -> tuple[int, bytes, str]:
        m = re.match(r"^/fake-storage/([^/]+/[^/]+)/(\d+)/(.+)$", path)
        if not m:
            return 404, b"not found", "text/plain"
        ref, version, name = m.group(1), int(m.group(2)), unquote(m.group(3))
        runs = self.kernels.get(ref) or []
        run = next((r for r in runs if r.version == version), None)
        if run is None or name not in run.outputs:
            return 404, STORAGE_ERROR_BODY, "application/xml"
        if name in run.plan.broken:
            return 403, STORAGE_ERROR_BODY, "application/xml"
        return 200, run.outputs[name], "application/octet-stream"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, code: int, payload: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    body = {}
                call = path.removeprefix("/api/v1/")
                auth = self.headers.get("Authorization")
                with server._lock:
                    server.requests.append(Received("POST", call, body, auth))
                    if not path.startswith("/api/v1/"):
                        code, answer = 404, {"code": 404, "message": "unknown path"}
                    else:
                        code, answer = server.handle_api(call, body, auth)
                self._send(code, json.dumps(answer).encode(), "application/json")

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                with server._lock:
                    server.requests.append(Received("GET", path, None, None))
                    code, payload, ctype = server.handle_download(path)
                self._send(code, payload, ctype)

            def do_PUT(self) -> None:
                path = urlsplit(self.path).path
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                    data = b"".join(parts)
                else:
                    data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with server._lock:
                    server.requests.append(Received("PUT", path, None, None))
                    code = server.handle_upload(path, data)
                self._send(code, b"", "text/plain")

            def do_CONNECT(self) -> None:  # https through the proxy: refused, never forwarded
                self._send(405, b"", "text/plain")

        return Handler


def shell_exports(server: FakeKaggle, home: str, results: str) -> Iterable[str]:
    env = {
        "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
        "HTTP_PROXY": f"http://127.0.0.1:{server.port}",
        "http_proxy": f"http://127.0.0.1:{server.port}",
        "HTTPS_PROXY": f"http://127.0.0.1:{server.port}",
        "https_proxy": f"http://127.0.0.1:{server.port}",
        "NO_PROXY": "",
        "no_proxy": "",
        "HOME": home,
        "KAGGLE_CONFIG_DIR": f"{home}/.kaggle",
        "KAGGLE_USERNAME": server.username,
        "KAGGLE_KEY": server.key,
        "RESULTS_DIR": results,
    }
    for k, v in env.items():
        yield f"export {k}={v!r}" if v else f"export {k}="


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kaggle_server", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--timeout", type=float, default=3600.0, help="stop after this many s")
    parser.add_argument("--state-seconds", type=float, default=5.0, help="time per run state")
    parser.add_argument("--home", default="/tmp/fake-kaggle-home")
    parser.add_argument("--results", default="/tmp/fake-kaggle-results")
    parser.add_argument(
        "--unknown-403", action="store_true", help="answer 403 for unknown kernels, like Kaggle"
    )
    parser.add_argument(
        "--stale-calls", type=int, default=0, help="lagging status/output answers after a push"
    )
    args = parser.parse_args(argv)
    server = FakeKaggle(
        port=args.port,
        timeout_s=args.timeout,
        seconds_per_state=args.state_seconds,
        unknown_kernel_code=403 if args.unknown_403 else 404,
        stale_calls=args.stale_calls,
    )
    measured_demo_metrics()  # compute once before the first push
    server.start()
    print(f"fake Kaggle API on 127.0.0.1:{server.port} (stops after {args.timeout:.0f} s)")
    print("in another shell, from the repository root:")
    for line in shell_exports(server, args.home, args.results):
        print("  " + line)
    print("  make push-dpt && make wait-dpt && make pull-dpt && make report")
    print(f"  cat {args.results}/LEADERBOARD.md")
    try:
        while server._thread is not None and server._thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
