"""`make upload-data DATA=FOLDER [DATASET=slug]`: your own speech + noise as a Kaggle dataset.

    python -m builders.kaggle upload-data FOLDER [--dataset SLUG] [--include-nc] [--poll S]

FOLDER is laid out as ../shared/data: `speech/`, `noise/` (WAV/FLAC, any depth) and
`MANIFEST.csv` (a `path` and a `license_note` column, one row per file). Nothing is uploaded
until the whole folder passes one check, with a progress bar:

- every audio file decodes to the end (common.audio), and is not digital silence;
- sample rate and channels: training resamples and mixes down on every read, so other rates
  and stereo are warnings (slower training), not errors;
- MANIFEST.csv lists every file, and every row under speech/ or noise/ names a file that is there;
- licences: non-commercial files (common.corpus.is_noncommercial) are left out, and counted,
  unless `--include-nc` (INCLUDE_NC=1);
- enough speakers and noise recordings for the speaker-disjoint train/val/test split.

A bad folder stops with one `error: FILE: problem` line per problem, exit 2. Then the files
are staged in build/upload-data/SLUG/ (hard links, else symlinks, else copies; the user's folder
is never written to) with dataset-metadata.json and a MANIFEST.csv of exactly the staged files,
uploaded with `kaggle datasets create` (new; private) or `kaggle datasets version` (the dataset
exists), `-r zip`: speech/ and noise/ go up as speech.zip and noise.zip, which Kaggle unpacks
into folders of those names (docs/kaggle.md). Kaggle is then polled (`kaggle datasets status`)
until the new version is ready, and the version is recorded in results/registry.json.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from builders.kaggle_cli import DatasetState, KaggleCli, KernelNotFound, failed_check
from builders.metadata import OWN_DATASET_SLUG, kaggle_username
from builders.registry import DatasetRecord, Registry, load_registry, utc_now
from common.errors import UserError
from common.provenance import git_head, sha256_file

REPO = Path(__file__).resolve().parents[1]
KINDS = ("speech", "noise")
MANIFEST = "MANIFEST.csv"
MANIFEST_COLUMNS = ("path", "license_note")
METADATA_FILE = "dataset-metadata.json"
DATASET_TITLE = "Speech and noise for speech enhancement"
# Kaggle takes one licence per dataset; the files' own licences differ, so the dataset says
# "other (specified in description)" and the description and MANIFEST.csv give them per file.
DATASET_LICENSE = "other"
# `kaggle datasets create` refuses slugs outside 6-50 characters; Kaggle's slugs are lower case.
SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
SLUG_LENGTH = (6, 50)
# The speaker-disjoint split (common.corpus.assign_splits) needs one group per split.
MIN_GROUPS = 3
EXAMPLES_PER_WARNING = 5  # files named in one grouped warning line
HASH_CHUNK = 1 << 20


@dataclass
class UploadConfig:
    """Where things go and how `kaggle datasets status` is polled (back-off up to `max_poll_s`)."""

    results_dir: Path = REPO / "results"
    staging_root: Path = REPO / "build" / "upload-data"
    poll_s: float = 15.0
    max_poll_s: float = 120.0
    backoff: float = 1.5
    ready_timeout_s: float = 3600.0
    # Right after a create, the status call may not know the dataset yet.
    not_found_grace_s: float = 300.0
    max_status_failures: int = 5
    workers: int = max(1, min(8, os.cpu_count() or 1))
    # Upload time limit: a base plus one second per MB (1 MB/s at worst).
    upload_base_timeout_s: float = 900.0


class FolderProblems(UserError):
    """Everything wrong with the folder, one line each; nothing was uploaded."""

    def __init__(self, problems: list[str], root: Path) -> None:
        self.problems = problems
        super().__init__(f"{root}: {len(problems)} problem(s) above; nothing was uploaded")


@dataclass
class AudioFile:
    rel: str  # "speech/..." or "noise/..."
    path: Path
    size: int = 0
    sha256: str = ""
    samplerate: int = 0
    channels: int = 0
    seconds: float = 0.0
    silent: bool = False
    problem: str | None = None


@dataclass
class FolderCheck:
    root: Path
    columns: list[str]
    rows: dict[str, dict[str, str]]  # MANIFEST rows of the files to upload
    files: list[AudioFile]  # the files to upload, sorted by path
    noncommercial_left_out: list[str] = field(default_factory=list)
    noncommercial_included: list[str] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(f.rel.startswith(kind + "/") for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def hours(self) -> dict[str, float]:
        return {
            k: sum(f.seconds for f in self.files if f.rel.startswith(k + "/")) / 3600 for k in KINDS
        }

    def manifest_text(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        staged = {f.rel for f in self.files}
        for rel, row in self.rows.items():  # the user's order
            if rel in staged:
                writer.writerow({k: row.get(k, "") for k in self.columns})
        return out.getvalue()

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f.rel}\t{f.sha256}\n".encode())
        h.update(self.manifest_text().encode())
        return h.hexdigest()


# --------------------------------------------------------------------------- the check


def check_slug(slug: str) -> str:
    low, high = SLUG_LENGTH
    if not SLUG_PATTERN.match(slug) or not low <= len(slug) <= high:
        raise UserError(
            f"dataset slug {slug!r}: use {low}-{high} lower-case letters, digits and hyphens "
            f"(e.g. {OWN_DATASET_SLUG})"
        )
    return slug


def _manifest_columns(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as CSV ({exc}); re-export it as UTF-8") from None
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise UserError(
            f"{path}: no {', '.join(repr(c) for c in missing)} column; the header needs "
            f"{', '.join(MANIFEST_COLUMNS)} (see ../shared/data/MANIFEST.csv)"
        )
    return header


def _inspect(item: AudioFile) -> AudioFile:
    """Hash the bytes and decode the whole file (common.audio); problems are kept, not raised."""
    from common.audio import SILENCE_RMS, AudioError, audio_info, load_audio

    try:
        item.sha256, item.size = sha256_file(item.path), item.path.stat().st_size
        info = audio_info(item.path)
        item.samplerate, item.channels = int(info.samplerate), int(info.channels)
        wav = load_audio(item.path, sr=item.samplerate)  # its own rate: decoded, not resampled
        item.seconds = len(wav) / item.samplerate
        item.silent = float((wav.astype("float64") ** 2).mean() ** 0.5) < SILENCE_RMS
    except AudioError as exc:
        item.problem = str(exc)
    except OSError as exc:
        item.problem = f"{item.path}: cannot be read ({exc.strerror or exc}); check its permissions"
    return item


def _grouped_warning(files: list[AudioFile], what: str, detail: Callable[[AudioFile], str]) -> None:
    if not files:
        return
    named = ", ".join(f"{f.rel}{detail(f)}" for f in files[:EXAMPLES_PER_WARNING])
    more = (
        f" and {len(files) - EXAMPLES_PER_WARNING} more"
        if len(files) > EXAMPLES_PER_WARNING
        else ""
    )
    warnings.warn(f"{len(files)} file(s) {what}: {named}{more}", stacklevel=3)


def check_folder(folder: str | Path, include_nc: bool = False, workers: int = 1) -> FolderCheck:
    """Check `folder` in one pass; FolderProblems (every problem, one line each) when it is bad."""
    from tqdm import tqdm

    from common.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, list_audio
    from common.corpus import is_noncommercial, read_manifest, speaker_of

    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise UserError(
            f"{folder}: folder not found; give a folder with speech/, noise/ and {MANIFEST}"
        )
    problems: list[str] = []
    for kind in KINDS:
        if not (root / kind).is_dir():
            problems.append(
                f"{root / kind}: folder not found; the data folder needs speech/ and noise/"
            )
    manifest = root / MANIFEST
    if not manifest.is_file():
        problems.append(
            f"{manifest}: not found; list every audio file in it with at least the columns "
            f"{', '.join(MANIFEST_COLUMNS)} (see ../shared/data/MANIFEST.csv)"
        )
    if problems:
        raise FolderProblems(problems, root)
    columns = _manifest_columns(manifest)
    rows = read_manifest(root)

    audio = {kind: list_audio(root / kind) for kind in KINDS}
    found = {p.relative_to(root).as_posix(): p for kind in KINDS for p in audio[kind]}
    for rel in sorted(found):
        if rel not in rows:
            problems.append(f"{found[rel]}: not listed in {manifest}; add a row for {rel}")
    for rel in sorted(rows):
        if rel.split("/", 1)[0] in KINDS and rel not in found:
            exists = (root / rel).is_file()
            why = "is not a .wav/.flac file" if exists else "is not in the folder"
            problems.append(f"{manifest}: row {rel} {why}; remove the row or restore the file")
    others = sorted(
        p.relative_to(root).as_posix()
        for kind in KINDS
        for p in (root / kind).rglob("*")
        if p.is_file() and p.suffix.lower() not in AUDIO_EXTENSIONS
    )
    if others:
        named = ", ".join(others[:EXAMPLES_PER_WARNING])
        more = (
            f" and {len(others) - EXAMPLES_PER_WARNING} more"
            if len(others) > EXAMPLES_PER_WARNING
            else ""
        )
        warnings.warn(
            f"{len(others)} file(s) that are not WAV/FLAC are not uploaded (training reads only "
            f"{'/'.join(AUDIO_EXTENSIONS)}): {named}{more}",
            stacklevel=2,
        )

    check = FolderCheck(root, columns, {}, [])
    candidates: list[AudioFile] = []
    for rel, path in sorted(found.items()):
        row = rows.get(rel)
        if row is None:
            continue  # already a problem
        if is_noncommercial(rel, row):
            (check.noncommercial_included if include_nc else check.noncommercial_left_out).append(
                rel
            )
            if not include_nc:
                continue
        candidates.append(AudioFile(rel, path))
    chosen = {item.rel for item in candidates}
    check.rows = {rel: row for rel, row in rows.items() if rel in chosen}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(_inspect, item) for item in candidates]
        bar = tqdm(total=len(futures), desc="checking", unit="file", file=sys.stderr, disable=None)
        for future in as_completed(futures):
            future.result()
            bar.update(1)
        bar.close()
    for item in candidates:
        if item.problem:
            problems.append(item.problem)
    good = [f for f in candidates if not f.problem]
    _grouped_warning(
        [f for f in good if f.samplerate != SAMPLE_RATE],
        f"not at {SAMPLE_RATE} Hz (training resamples them on every read, which is slower; "
        f"resample them once to {SAMPLE_RATE} Hz to avoid it)",
        lambda f: f" ({f.samplerate} Hz)",
    )
    _grouped_warning(
        [f for f in good if f.channels > 1],
        "with more than one channel (training mixes them down to mono on every read)",
        lambda f: f" ({f.channels} channels)",
    )
    _grouped_warning(
        [f for f in good if f.silent],
        "silent (no energy; training skips them)",
        lambda f: "",
    )

    check.files = sorted(good, key=lambda f: f.rel)
    usable = [f for f in check.files if not f.silent]
    speakers = {speaker_of(f.rel, check.rows[f.rel]) for f in usable if f.rel.startswith("speech/")}
    noises = [f for f in usable if f.rel.startswith("noise/")]
    note = (
        f" ({len(check.noncommercial_left_out)} non-commercial file(s) left out; INCLUDE_NC=1 "
        "keeps them)"
        if check.noncommercial_left_out
        else ""
    )
    if not any(f.problem for f in candidates):
        if len(speakers) < MIN_GROUPS:
            problems.append(
                f"{root / 'speech'}: {len(speakers)} speaker(s) to upload{note}; training splits "
                f"speech by speaker into train/val/test and needs at least {MIN_GROUPS}"
            )
        if len(noises) < MIN_GROUPS:
            problems.append(
                f"{root / 'noise'}: {len(noises)} noise recording(s) to upload{note}; training "
                f"splits noise by recording into train/val/test and needs at least {MIN_GROUPS}"
            )
    if problems:
        raise FolderProblems(problems, root)
    return check


# --------------------------------------------------------------------------- staging


def _place(src: Path, dest: Path) -> str:
    """Hard link, else symlink, else copy; the name of what was done. The CLI zips sub-folders
    with zipfile, which reads through symlinks (a tar would keep them as links)."""
    try:
        os.link(src, dest)
        return "hard link"
    except OSError:
        pass
    try:
        dest.symlink_to(src)
        return "symlink"
    except OSError:
        shutil.copy2(src, dest)
        return "copy"


def _description(check: FolderCheck) -> str:
    licences = Counter(
        check.rows[f.rel].get("license_note", "").strip() or "(none given)" for f in check.files
    )
    lines = [
        "Clean speech (`speech/`) and noise (`noise/`) for training speech enhancement models, "
        "uploaded with `make upload-data` (lightweight speech enhancement).",
        "",
        f"{check.count('speech')} speech files ({check.hours['speech']:.2f} h) and "
        f"{check.count('noise')} noise files ({check.hours['noise']:.2f} h). `MANIFEST.csv` "
        "gives each file's source and licence (`license_note`).",
        "",
    ]
    if check.noncommercial_included:
        lines.append(
            f"Includes {len(check.noncommercial_included)} file(s) under non-commercial terms: "
            "a model trained on them may not be shipped."
        )
    else:
        lines.append("Files under non-commercial terms were left out.")
    lines += ["", "Licences (files):"]
    lines += [f"- {note} ({n})" for note, n in licences.most_common()]
    return "\n".join(lines)


def stage(check: FolderCheck, ref: str, staging: Path) -> dict[str, int]:
    """Write `staging` afresh: the files, MANIFEST.csv of exactly them, dataset-metadata.json."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    done: Counter[str] = Counter()
    for f in check.files:
        dest = staging / f.rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        done[_place(f.path, dest)] += 1
    (staging / MANIFEST).write_text(check.manifest_text(), encoding="utf-8")
    meta = {
        "title": DATASET_TITLE,
        "id": ref,
        "licenses": [{"name": DATASET_LICENSE}],
        "description": _description(check),
    }
    (staging / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return dict(done)


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# --------------------------------------------------------------------------- upload


def _wait_ready(
    ref: str,
    previous: int | None,
    record: DatasetRecord,
    registry: Registry,
    cfg: UploadConfig,
    cli: KaggleCli,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> DatasetState:
    """Poll with back-off until the new version is ready: the current version number above
    `previous` (an existing dataset's) and the state "ready"."""
    start, interval, last, failures = clock(), cfg.poll_s, None, 0
    while True:
        st: DatasetState | None
        try:
            st = cli.dataset_state(ref)
            failures = 0
        except KernelNotFound:
            if clock() - start >= cfg.not_found_grace_s:
                raise UserError(
                    f"{ref}: Kaggle accepted the upload but still does not show the dataset after "
                    f"{cfg.not_found_grace_s:.0f} s; check {record.url}"
                ) from None
            st = None
        except UserError as exc:
            failures = failed_check(failures, cfg.max_status_failures, ref, exc)
            st = None
        if st is not None:
            fresh = previous is None or st.version is None or st.version > previous
            shown = st.status if fresh else f"{st.status} (still v{st.version})"
            if shown != last:
                print(f"[{time.strftime('%H:%M:%S')} +{int(clock() - start)}s] {ref}: {shown}")
                last = shown
                record.status, record.status_at = st.status, utc_now()
                registry.save()
            if fresh and st.failed:
                raise UserError(
                    f"Kaggle could not process {ref} (state {st.status}): see {record.url}"
                )
            if fresh and st.ready:
                return st
        if clock() - start + interval > cfg.ready_timeout_s:
            raise UserError(
                f"{ref} is still {last or 'not visible'} after {cfg.ready_timeout_s:.0f} s; Kaggle goes "
                f"on processing it: check `kaggle datasets status {ref}` before pushing a notebook "
                "that attaches it"
            )
        sleep(interval)
        interval = min(interval * cfg.backoff, cfg.max_poll_s)


def upload_data(
    folder: str | Path,
    slug: str = OWN_DATASET_SLUG,
    include_nc: bool = False,
    cfg: UploadConfig | None = None,
    cli: KaggleCli | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DatasetRecord:
    """Check `folder`, stage it, create or version the dataset OWNER/`slug`, wait, record."""
    cfg = cfg or UploadConfig()
    tmp = cfg.staging_root / ".tmp"  # the CLI's zips of speech/ and noise/, beside the staging
    cli = cli or KaggleCli(env={**os.environ, "TMPDIR": str(tmp)})
    credentials = cli.credentials()  # before anything is read or written
    check_slug(slug)
    owner = credentials.username or kaggle_username()
    if not owner:
        raise UserError(
            "no Kaggle user name to own the dataset: set KAGGLE_USERNAME (a token alone does not say it)"
        )
    ref = f"{owner}/{slug}"
    root = Path(folder).expanduser().resolve()
    staging = (cfg.staging_root / slug).resolve()
    if _is_within(staging, root) or _is_within(root, cfg.staging_root.resolve()):
        raise UserError(
            f"{root}: the staging folder {staging} would be inside it (or it inside the staging "
            "folder); move the data out of the repository's build/ folder or the staging out of it"
        )
    registry = load_registry(cfg.results_dir)

    check = check_folder(root, include_nc=include_nc, workers=cfg.workers)
    size_mb = check.bytes / 1e6
    print(
        f"checked {root}: {check.count('speech')} speech file(s) ({check.hours['speech']:.2f} h), "
        f"{check.count('noise')} noise file(s) ({check.hours['noise']:.2f} h), {size_mb:.1f} MB"
    )
    if check.noncommercial_left_out:
        print(
            f"left out {len(check.noncommercial_left_out)} non-commercial file(s) (e.g. "
            f"{check.noncommercial_left_out[0]}); INCLUDE_NC=1 uploads them, but a model trained "
            "on them may not be shipped"
        )
    if check.noncommercial_included:
        print(
            f"including {len(check.noncommercial_included)} non-commercial file(s) (INCLUDE_NC=1): "
            "a model trained on them may not be shipped"
        )
    skipped = sorted(p.name for p in root.iterdir() if p.name not in (*KINDS, MANIFEST))
    if skipped:
        print(f"not uploaded (only speech/, noise/ and {MANIFEST} are): {', '.join(skipped)}")

    try:
        before: DatasetState | None = cli.dataset_state(ref)
    except KernelNotFound:
        before = None
    last = registry.latest_dataset(ref)
    if (
        before is not None
        and before.ready
        and last is not None
        and last.digest == check.digest
        and last.version is not None
        and last.version == before.version
    ):
        print(
            f"{ref} v{last.version} already holds exactly these files ({last.uploaded_at}): nothing uploaded"
        )
        return last

    placed = stage(check, ref, staging)
    print(
        f"staged in {staging} ({', '.join(f'{n} {how}(s)' for how, n in sorted(placed.items()))})"
    )
    tmp.mkdir(parents=True, exist_ok=True)
    message = None
    if before is not None:
        message = (
            f"make upload-data: {check.count('speech')} speech + {check.count('noise')} noise files "
            f"from {root.name} (git {git_head(REPO, short=True) or 'unknown'}, files sha256 {check.digest[:12]})"
        )
    action = "a new version of" if before is not None else "the new private dataset"
    print(f"uploading {size_mb:.1f} MB as {action} {ref}; this can take a while")
    url = cli.dataset_upload(staging, message, cfg.upload_base_timeout_s + size_mb)
    record = registry.add_dataset(
        DatasetRecord(
            ref=ref,
            version=None,
            uploaded_at=utc_now(),
            source=str(root),
            files=len(check.files),
            bytes=check.bytes,
            digest=check.digest,
            speech_files=check.count("speech"),
            noise_files=check.count("noise"),
            noncommercial_left_out=len(check.noncommercial_left_out),
            include_noncommercial=include_nc,
            created=before is None,
            url=url,
            status="uploaded",
            status_at=utc_now(),
        )
    )
    registry.save()
    state = _wait_ready(
        ref, before.version if before else None, record, registry, cfg, cli, sleep, clock
    )
    if state.version is None and before is None:
        state = DatasetState(state.status, 1)
    record.version, record.status, record.status_at = state.version, state.status, utc_now()
    registry.save()
    shutil.rmtree(tmp, ignore_errors=True)
    label = f"v{record.version}" if record.version is not None else "(version not reported)"
    print(f"{ref} {label} is ready: {url}")
    print(f'a recipe reads it with "{slug}" in its [kernel] dataset_sources')
    return record
