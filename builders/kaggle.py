"""Kaggle operations: push, status, wait, pull (every result kept) and the leaderboard.

    python -m builders.kaggle push NAME [--resume]   # build, pull the previous outputs, push, record
    python -m builders.kaggle status NAME
    python -m builders.kaggle wait NAME [--poll S] [--timeout S]
    python -m builders.kaggle pull NAME              # -> results/NAME/vN/
    python -m builders.kaggle report [--runs DIR...]  # -> results/report.html, LEADERBOARD.md
    python -m builders.kaggle upload-data FOLDER [--dataset SLUG] [--include-nc]
                                                     # your speech + noise as a Kaggle dataset

Kaggle only ever serves the outputs of a kernel's *latest* version, so `push` first pulls the
outputs of the previous version when they are not saved yet (and refuses while it still runs):
a new version can never make a finished run's outputs unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from builders.kaggle_cli import (
    ACTIVE_STATES,
    KaggleCli,
    KernelNotFound,
    KernelStatus,
    failed_check,
)
from builders.outputs import verify_outputs
from builders.parameters import INJECTED_TAG, parameter_values, tagged_cells
from builders.registry import (
    Registry,
    RunRecord,
    find_summary,
    load_registry,
    path_depth,
    utc_now,
)
from common.errors import UserError, exit_status, warnings_on_one_line
from common.kaggle_paths import KAGGLE_INPUT
from common.provenance import git_commit

REPO = Path(__file__).resolve().parents[1]
# Kaggle mounts an attached notebook's outputs read-only under /kaggle/input. The layout has
# changed before (datasets moved to /kaggle/input/datasets/<owner>/<slug>/), so the notebook
# should fall back to searching /kaggle/input for this file name when the path is missing.
RESUME_PARAMETER = "resume_checkpoint"
RESUME_FILE = "last.pt"
METADATA_SETTINGS = (
    "id",
    "title",
    "is_private",
    "enable_gpu",
    "enable_tpu",
    "enable_internet",
    "machine_shape",
    "dataset_sources",
    "competition_sources",
    "kernel_sources",
    "model_sources",
    "docker_image_pinning_type",
)


@dataclass
class OpsConfig:
    """Where results live and how `wait` polls (back-off from `poll_s` up to `max_poll_s`)."""

    results_dir: Path = REPO / "results"
    poll_s: float = 15.0
    max_poll_s: float = 300.0
    backoff: float = 1.5
    wait_timeout_s: float = 13 * 3600.0  # Kaggle's 12 h GPU session plus time in the queue
    max_status_failures: int = 5
    # How long after a push an unlabelled status that says "finished" for a version never seen
    # queued or running is taken for the previous session's (older CLIs cannot ask by version).
    stale_grace_s: float = 600.0


BuildFn = Callable[[str, "str | None"], Path]


def _default_build(name: str, username: str | None) -> Path:
    try:
        from builders.build import build_kernel
    except ImportError as exc:
        raise UserError(f"builders.build is not available ({exc}): cannot build {name}") from exc
    return build_kernel(name, username=username)


# --------------------------------------------------------------------------- the built kernel


def read_kernel_dir(kernel_dir: Path) -> tuple[dict[str, Any], Path, dict[str, Any]]:
    """(kernel-metadata.json, notebook path, notebook JSON), checked the way Kaggle would."""
    meta_path = kernel_dir / "kernel-metadata.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{meta_path}: missing or not JSON ({exc}); run make build") from exc
    ref = str(meta.get("id", ""))
    if ref.count("/") != 1 or not all(ref.split("/")):
        raise UserError(f"{meta_path}: id must be 'owner/slug', got {ref!r}")
    nb_path = kernel_dir / str(meta.get("code_file", ""))
    if not meta.get("code_file") or not nb_path.is_file():
        raise UserError(f"{meta_path}: code_file {meta.get('code_file')!r} does not exist")
    try:
        notebook = json.loads(nb_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{nb_path}: not a notebook ({exc}); run make build") from exc
    # Kaggle runs notebooks with papermill, which fails with "No kernel name found" without it.
    if not notebook.get("metadata", {}).get("kernelspec", {}).get("name"):
        raise UserError(f"{nb_path}: no metadata.kernelspec.name; Kaggle cannot run it")
    return meta, nb_path, notebook


def _validate_with_builder(kernel_dir: Path, meta: dict[str, Any]) -> None:
    from builders.metadata import require_username, validate_metadata

    require_username(meta)
    validate_metadata(meta, kernel_dir)


def inject_parameters(nb_path: Path, notebook: dict[str, Any], values: dict[str, Any]) -> None:
    """Add a papermill-style `injected-parameters` cell right after the `parameters` cell."""
    found = tagged_cells(notebook.get("cells", []))
    if not found:
        raise UserError(f"{nb_path}: no cell tagged 'parameters' to override {sorted(values)}")
    source = "# Parameters set by `python -m builders.kaggle push`\n" + "".join(
        f"{k} = {v!r}\n" for k, v in values.items()
    )
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "id": "injected-parameters",
        "metadata": {"tags": [INJECTED_TAG]},
        "outputs": [],
        "source": source,
    }
    notebook["cells"].insert(found[0] + 1, cell)
    nb_path.write_text(json.dumps(notebook, indent=1) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- operations


def _kernel_ref(name: str, registry: Registry) -> str:
    run = registry.latest(name)
    if run is not None:
        return run.kernel
    meta = REPO / "build" / "kernels" / name / "kernel-metadata.json"
    if meta.is_file():
        return str(json.loads(meta.read_text(encoding="utf-8"))["id"])
    raise UserError(
        f"no push of {name!r} recorded in {registry.path}: run `make push-{name}` first"
    )


def _labelled_version(run: RunRecord | None, cli: KaggleCli) -> int | None:
    """The version to ask Kaggle about by label; None: the CLI can only ask for the latest."""
    if run is None or run.version is None or run.version_inferred or not cli.version_labels:
        return None
    return run.version


def _seconds_since_push(run: RunRecord) -> float:
    try:
        pushed = datetime.fromisoformat(run.pushed_at)
    except ValueError:
        return float("inf")
    return (datetime.now(UTC) - pushed).total_seconds()


def _may_be_previous_session(
    run: RunRecord, status: KernelStatus, registry: Registry, labelled: bool, age_s: float, cfg
) -> bool:
    """An unlabelled "finished" for a version never seen queued or running, soon after its push:
    Kaggle may still be describing the previous version's session."""
    return (
        not labelled
        and status.finished
        and not run.seen_active
        and registry.before(run) is not None
        and age_s < cfg.stale_grace_s
    )


def _record_status(run: RunRecord, status: KernelStatus) -> None:
    run.status = status.state
    run.failure_message = status.failure_message
    run.status_at = utc_now()
    if status.state in ACTIVE_STATES:
        run.seen_active = True


def _hashes(files: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {k: v["sha256"] for k, v in files.items()}


def _pull_run(run: RunRecord, registry: Registry, cfg: OpsConfig, cli: KaggleCli) -> Path:
    """Download `run`'s outputs into results/NAME/vN/, checked and recorded."""
    dest = cfg.results_dir / run.name / run.version_dir_name
    staging = dest.with_name(dest.name + ".incoming")
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted pull of ours
    cli.output(run.kernel, staging, _labelled_version(run, cli))
    files = verify_outputs(staging)
    previous = registry.before(run)
    if previous is not None and previous.files and _hashes(previous.files) == _hashes(files):
        # Kaggle answered with the previous session's files: saving them as this version would
        # mark it pulled and let the next push hide its real outputs.
        shutil.rmtree(staging)
        raise UserError(
            f"Kaggle served {previous.label}'s outputs (identical files) for {run.label} of "
            f"{run.kernel}: nothing saved; run `make pull-{run.name}` again in a few minutes"
        )
    if dest.exists() and any(dest.iterdir()):
        earlier = verify_outputs(dest)
        if _hashes(earlier) != _hashes(files):
            raise UserError(
                f"{dest} already holds a different download of {run.label}; the new one is in "
                f"{staging}: compare them, keep one as {dest} and delete the other"
            )
        shutil.rmtree(staging)
        print(f"{run.label}: outputs already saved in {dest} (identical)")
    else:
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
        print(f"{run.label}: {len(files)} file(s) saved in {dest}")
    run.pulled_at = utc_now()
    run.pulled_dir = dest.relative_to(cfg.results_dir).as_posix()
    run.files = files
    registry.save()
    _check_summary(run, dest)
    return dest


def _check_summary(run: RunRecord, dest: Path) -> None:
    """Warn when the pulled summary.json was not written by the notebook this version pushed."""
    name = find_summary(run.files)
    if name is None:
        if run.status == "COMPLETE":
            warnings.warn(
                f"{dest}: no summary.json, so {run.label} has no leaderboard row", stacklevel=2
            )
        return
    summary = json.loads((dest / name).read_text(encoding="utf-8"))
    got = summary.get("build") if isinstance(summary.get("build"), dict) else {}
    pushed = run.config.get("build") or {}
    mismatch = None
    if got.get("sources_sha256") and pushed.get("sources_sha256"):
        if got["sources_sha256"] != pushed["sources_sha256"]:
            mismatch = "its sources_sha256 differs from the pushed notebook's"
    else:
        commit = str(summary.get("git_commit") or got.get("git_commit") or "")
        expected = str(pushed.get("git_commit") or run.git_commit)
        if commit and expected != "unknown" and commit[:12] != expected[:12]:
            mismatch = f"its git_commit {commit[:12]} is not the pushed {expected[:12]}"
    if mismatch:
        warnings.warn(
            f"{dest / name}: {mismatch}: these outputs may belong to another version of "
            f"{run.kernel}",
            stacklevel=2,
        )


def check_sources(name: str, meta: dict[str, Any], cli: KaggleCli) -> None:
    """Refuse, before anything is pushed, a dataset or kernel source Kaggle does not show.

    Kaggle itself only prints "The following are not valid dataset sources" and runs the
    notebook anyway, which then spends a GPU session failing to find its data.
    """
    own = str(meta["id"])
    user = own.split("/")[0]
    recipe = REPO / "recipes" / f"{name}.toml"
    where = f"recipes/{name}.toml [kernel]" if recipe.is_file() else f"kernel-metadata/{name}.json"
    for source in meta.get("dataset_sources") or []:
        owner, slug = (source.split("/") + [""])[:2]
        try:
            cli.dataset_status(f"{owner}/{slug}")
        except KernelNotFound:
            if owner == user:  # the user's own speech + noise, not uploaded yet
                raise UserError(
                    f"dataset source {source!r} (your own data, named in dataset_sources in "
                    f"{where}) is not on Kaggle yet: create it with `make upload-data "
                    f"DATA=FOLDER DATASET={slug}`, or remove it to train on the public dataset; "
                    "nothing was pushed"
                ) from None
            raise UserError(
                f"dataset source {source!r} is not on Kaggle (or not visible to you): fix "
                f"dataset_sources in {where} (or _defaults.json); nothing was pushed"
            ) from None
    for source in meta.get("kernel_sources") or []:
        if source == own:
            continue  # --resume attaches the kernel's own outputs: the guard has checked it
        try:
            cli.status(source)
        except KernelNotFound:
            raise UserError(
                f"kernel source {source!r} is not on Kaggle (or not visible to you): push that "
                f"notebook first, or remove it from kernel_sources in {where}; nothing was pushed"
            ) from None


def _guard_previous(
    name: str, ref: str, registry: Registry, cfg: OpsConfig, cli: KaggleCli
) -> None:
    """Save the outputs of the kernel's current version before a new push hides them."""
    previous = registry.latest(name)
    if previous is not None and previous.kernel != ref:
        previous = None  # the notebook now pushes to another kernel; that one stays reachable
    if previous is not None and previous.pulled_at is not None:
        return
    version = _labelled_version(previous, cli)
    try:
        status = cli.status(ref, version)
    except KernelNotFound as exc:
        if previous is None:
            # Kaggle answers 403, not 404, for a kernel that does not exist: one this registry
            # has never pushed is new, and there is nothing to lose.
            print(f"{ref}: not on Kaggle yet: pushing it as a new kernel")
            return
        raise UserError(
            f"{previous.label} ({ref}) is recorded in {registry.path} but its status cannot be "
            f"read ({exc}); a new push could hide its outputs: check the slug and credentials"
        ) from None
    if previous is None:
        # Pushed from the Kaggle UI or another clone: keep its outputs under an unknown version.
        commit = "unknown"
        previous = registry.add(RunRecord(name, ref, None, utc_now(), commit, url=None))
    stale = _may_be_previous_session(
        previous, status, registry, version is not None, _seconds_since_push(previous), cfg
    )
    if not stale:
        _record_status(previous, status)
    registry.save()
    if stale or not status.finished:
        state = "starting" if stale else status.state
        raise UserError(
            f"{previous.label} ({ref}) is still {state} on Kaggle and a new push would make "
            f"its outputs unreachable: run `make wait-{name}` and `make pull-{name}` first"
        )
    print(f"{previous.label}: saving its outputs before the new push")
    _pull_run(previous, registry, cfg, cli)


def _resume_source(name: str, ref: str, registry: Registry) -> tuple[RunRecord, str]:
    run = registry.latest(name)
    if run is None or run.kernel != ref or run.pulled_at is None:
        raise UserError(f"--resume: no pulled version of {ref} to resume from; push without it")
    candidates = sorted(
        (f for f in run.files if f.rsplit("/", 1)[-1] == RESUME_FILE), key=path_depth
    )
    if not candidates:
        raise UserError(
            f"--resume: {run.label} saved no {RESUME_FILE} (see {run.pulled_dir}); push without it"
        )
    slug = ref.split("/", 1)[1]
    return run, f"{KAGGLE_INPUT}/{slug}/{candidates[0]}"


def push(
    name: str,
    resume: bool = False,
    cfg: OpsConfig | None = None,
    cli: KaggleCli | None = None,
    build: BuildFn | None = None,
) -> RunRecord:
    """Build and check NAME, save the previous version's outputs, push, and record the version."""
    cfg = cfg or OpsConfig()
    cli = cli or KaggleCli()
    credentials = cli.credentials()  # before anything is built, pulled or written
    registry = load_registry(cfg.results_dir)
    kernel_dir = (build or _default_build)(name, credentials.username)
    meta, nb_path, notebook = read_kernel_dir(kernel_dir)
    _validate_with_builder(kernel_dir, meta)
    ref = str(meta["id"])

    _guard_previous(name, ref, registry, cfg, cli)
    check_sources(name, meta, cli)

    resume_from = None
    if resume:
        if RESUME_PARAMETER not in parameter_values(notebook.get("cells", [])):
            raise UserError(
                f"--resume: the parameters cell of notebooks_src/{name}.py has no "
                f"{RESUME_PARAMETER}; add `{RESUME_PARAMETER} = None` there"
            )
        source_run, checkpoint = _resume_source(name, ref, registry)
        resume_from = source_run.version
        sources = list(meta.get("kernel_sources") or [])
        if ref not in sources:
            sources.append(ref)
        meta["kernel_sources"] = sources
        (kernel_dir / "kernel-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        inject_parameters(nb_path, notebook, {RESUME_PARAMETER: checkpoint})
        print(f"{name}: resuming from {source_run.label} ({checkpoint})")

    commit, dirty = git_commit(REPO)
    result = cli.push(kernel_dir)
    version, inferred = result.version, False
    if version is None:
        known = [r.version for r in registry.runs if r.kernel == ref and r.version is not None]
        version, inferred = (max(known) + 1 if known else 1), True
        warnings.warn(
            f"{ref}: Kaggle did not report the version number; recording v{version}", stacklevel=2
        )
    config = {k: meta[k] for k in METADATA_SETTINGS if k in meta}
    config["parameters"] = parameter_values(
        json.loads(nb_path.read_text(encoding="utf-8")).get("cells", [])
    )
    config["git_dirty"] = dirty
    from builders.build import BUILD_KEY

    build_record = notebook.get("metadata", {}).get(BUILD_KEY)
    if isinstance(build_record, dict):
        # What the notebook was built from; the notebook copies it into summary.json.
        config["build"] = {k: v for k, v in build_record.items() if k != "library"}
    run = registry.add(
        RunRecord(
            name=name,
            kernel=ref,
            version=version,
            pushed_at=utc_now(),
            git_commit=commit,
            url=result.url,
            config=config,
            resume_from=resume_from,
            version_inferred=inferred,
            status="QUEUED",
            status_at=utc_now(),
        )
    )
    registry.save()
    note = " (uncommitted changes: the record's commit is not the whole story)" if dirty else ""
    print(f"pushed {run.label} as {ref}: {result.url}{note}")
    if result.warnings:
        # The sources were checked before the push; Kaggle disagreeing now is rare but costly.
        raise UserError(
            f"{run.label} was pushed but Kaggle dropped some of its inputs ({'; '.join(result.warnings)}): "
            f"stop the run at {result.url} and fix kernel-metadata/{name}.json"
        )
    return run


def _tracked_run(name: str, ref: str, registry: Registry) -> RunRecord | None:
    run = registry.latest(name)
    return run if run is not None and run.kernel == ref else None


def _tracked(
    name: str, cfg: OpsConfig | None, cli: KaggleCli | None
) -> tuple[OpsConfig, KaggleCli, Registry, str, RunRecord | None, int | None]:
    """What `status` and `wait` start from, credentials checked first: the settings, the CLI,
    the registry, the kernel, its latest tracked run and the version to ask about."""
    cfg = cfg or OpsConfig()
    cli = cli or KaggleCli()
    cli.credentials()
    registry = load_registry(cfg.results_dir)
    ref = _kernel_ref(name, registry)
    run = _tracked_run(name, ref, registry)
    return cfg, cli, registry, ref, run, _labelled_version(run, cli)


def status(name: str, cfg: OpsConfig | None = None, cli: KaggleCli | None = None) -> KernelStatus:
    cfg, cli, registry, ref, run, version = _tracked(name, cfg, cli)
    st = cli.status(ref, version)
    note = ""
    if run is not None:
        if _may_be_previous_session(
            run, st, registry, version is not None, _seconds_since_push(run), cfg
        ):
            note = " (this may still be the previous version's session: Kaggle has not shown this one running yet)"
        else:
            _record_status(run, st)
            registry.save()
    label = run.label if run is not None else name
    print(f"{label} ({ref}): {st.state}{note}")
    if st.failure_message:
        print(f"failure message: {st.failure_message}")
    return st


def wait(
    name: str,
    cfg: OpsConfig | None = None,
    cli: KaggleCli | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> KernelStatus:
    """Poll with back-off until the run finishes; UserError on ERROR, cancel or the time limit.

    A "finished" that may still describe the previous version's session (see
    `_may_be_previous_session`) does not end the wait.
    """
    cfg, cli, registry, ref, run, version = _tracked(name, cfg, cli)
    label = run.label if run is not None else name
    age_at_start = _seconds_since_push(run) if run is not None else float("inf")
    start, interval, last, failures, said_stale = clock(), cfg.poll_s, None, 0, False
    while True:
        age = age_at_start + clock() - start
        try:
            st = cli.status(ref, version)
            failures = 0
        except KernelNotFound:
            if version is None or age >= cfg.stale_grace_s:
                raise
            st = None  # a version label Kaggle does not know yet, right after the push
        except UserError as exc:
            failures = failed_check(failures, cfg.max_status_failures, label, exc)
            st = None
        if (
            st is not None
            and run is not None
            and _may_be_previous_session(run, st, registry, version is not None, age, cfg)
        ):
            if not said_stale:
                print(
                    f"{label} ({ref}): Kaggle still reports the previous session ({st.state}); "
                    "waiting for this version to start"
                )
                said_stale = True
            st = None
        if st is not None and st.state != last:
            elapsed = int(clock() - start)
            print(f"[{time.strftime('%H:%M:%S')} +{elapsed}s] {label} ({ref}): {st.state}")
            last = st.state
            if run is not None:
                _record_status(run, st)
                registry.save()
        if st is not None and st.finished:
            break
        if clock() - start + interval > cfg.wait_timeout_s:
            raise UserError(
                f"{label} is still {last or 'not reachable'} after {cfg.wait_timeout_s:.0f} s: "
                f"run `make wait-{name}` again later (the run continues on Kaggle)"
            )
        sleep(interval)
        interval = min(interval * cfg.backoff, cfg.max_poll_s)
    if st.state == "ERROR":
        raise UserError(
            f"{label} failed on Kaggle: {st.failure_message or 'no failure message'}; "
            f"`make pull-{name}` saves its log"
        )
    if st.state != "COMPLETE":
        raise UserError(f"{label} did not complete on Kaggle: it ended as {st.state}")
    return st


def pull(name: str, cfg: OpsConfig | None = None, cli: KaggleCli | None = None) -> Path:
    """Download the latest pushed version's outputs and log into results/NAME/vN/ (checked)."""
    cfg = cfg or OpsConfig()
    cli = cli or KaggleCli()
    cli.credentials()
    registry = load_registry(cfg.results_dir)
    run = registry.latest(name)
    if run is None:
        raise UserError(
            f"no push of {name!r} recorded in {registry.path}: run `make push-{name}` first"
        )
    version = _labelled_version(run, cli)
    st = cli.status(run.kernel, version)
    if _may_be_previous_session(
        run, st, registry, version is not None, _seconds_since_push(run), cfg
    ):
        raise UserError(
            f"{run.label} has not started on Kaggle yet (its status still describes the previous "
            f"session): run `make wait-{name}` first"
        )
    _record_status(run, st)
    registry.save()
    if not st.finished:
        # A pull now would save partial outputs that a later, complete pull could not replace.
        raise UserError(f"{run.label} is still {st.state} on Kaggle: run `make wait-{name}` first")
    return _pull_run(run, registry, cfg, cli)


# --------------------------------------------------------------------------- command line


def _results_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("RESULTS_DIR") or REPO / "results").resolve()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m builders.kaggle", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--results", help="results folder (default: $RESULTS_DIR or results/)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("push", help="build, save the previous outputs, push, record")
    p.add_argument("name")
    p.add_argument(
        "--resume", action="store_true", help="continue from the last pulled version's last.pt"
    )
    sub.add_parser("status", help="print the state of the latest version").add_argument("name")
    p = sub.add_parser("wait", help="poll until the run finishes")
    p.add_argument("name")
    p.add_argument("--poll", type=float, default=OpsConfig.poll_s, help="first interval, s")
    p.add_argument("--max-poll", type=float, default=OpsConfig.max_poll_s, help="longest, s")
    p.add_argument("--timeout", type=float, default=OpsConfig.wait_timeout_s, help="limit, s")
    sub.add_parser("pull", help="download outputs into results/NAME/vN/").add_argument("name")
    p = sub.add_parser(
        "report", help="results/report.html + LEADERBOARD.md from pulled runs and --runs folders"
    )
    p.add_argument("--runs", nargs="*", default=[], metavar="DIR", help="local run folders")
    p.add_argument(
        "--baseline",
        default="auto",
        help="run the others are compared with (default: previous best)",
    )
    from builders.metadata import OWN_DATASET_SLUG
    from builders.upload_data import UploadConfig

    p = sub.add_parser(
        "upload-data",
        help="check FOLDER (speech/, noise/, MANIFEST.csv) and upload it as your Kaggle dataset",
    )
    p.add_argument("folder")
    p.add_argument("--dataset", default=OWN_DATASET_SLUG, help="slug (default: %(default)s)")
    p.add_argument("--include-nc", action="store_true", help="upload the non-commercial files too")
    p.add_argument("--poll", type=float, default=UploadConfig.poll_s, help="first interval, s")
    p.add_argument(
        "--timeout", type=float, default=UploadConfig.ready_timeout_s, help="wait for ready, s"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings_on_one_line()
    args = build_parser().parse_args(argv)
    cfg = OpsConfig(results_dir=_results_dir(args.results))

    def run_command() -> None:
        if args.command == "push":
            push(args.name, resume=args.resume, cfg=cfg)
        elif args.command == "status":
            status(args.name, cfg=cfg)
        elif args.command == "wait":
            cfg.poll_s, cfg.max_poll_s, cfg.wait_timeout_s = args.poll, args.max_poll, args.timeout
            wait(args.name, cfg=cfg)
        elif args.command == "pull":
            pull(args.name, cfg=cfg)
        elif args.command == "upload-data":
            from builders.upload_data import UploadConfig, upload_data

            upload_cfg = UploadConfig(
                results_dir=cfg.results_dir, poll_s=args.poll, ready_timeout_s=args.timeout
            )
            upload_data(args.folder, args.dataset, args.include_nc, cfg=upload_cfg)
        else:
            from builders.report import make_report

            make_report(cfg.results_dir, args.runs, args.baseline)

    return exit_status(run_command)


if __name__ == "__main__":
    raise SystemExit(main())
