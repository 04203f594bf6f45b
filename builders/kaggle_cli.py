"""A thin wrapper over the official `kaggle` CLI, run as a subprocess.

Why a subprocess: `import kaggle` authenticates at import time (and may call the network), so the
CLI is never imported here. The wrapper turns the CLI's quirks into plain results or one-line
`UserError`s:
- `kernels push` exits 0 when Kaggle rejects the push ("Kernel push error: ...");
- `kernels status` exits 0 for every state and prints the enum's class name;
- missing credentials print a long help text to stdout, so they are detected here first;
- errors come with hint lines after them (2.2.5), so the whole output is read, not its last line;
- 2.2.5 sends `owner/slug/N` as a version label: status and outputs then belong to version N
  instead of to whatever session Kaggle calls the latest (`version_labels`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from common.errors import UserError

# NEW_SCRIPT (saved, never run) counts as finished: nothing is running whose outputs could be lost.
TERMINAL_STATES = ("COMPLETE", "ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED", "NEW_SCRIPT")
ACTIVE_STATES = ("QUEUED", "RUNNING")

CREDENTIALS_HELP = (
    "no Kaggle credentials found: put your API key in ~/.kaggle/kaggle.json "
    '({"username": ..., "key": ...}, chmod 600), or set KAGGLE_USERNAME and KAGGLE_KEY, '
    "or KAGGLE_API_TOKEN (create one at https://www.kaggle.com/settings/api)"
)


@dataclass(frozen=True)
class Credentials:
    """Where the CLI will find credentials; `username` is None when only a token is known."""

    source: str
    username: str | None


@dataclass(frozen=True)
class PushResult:
    version: int | None
    url: str | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetState:
    """`kaggle datasets status --format json`: "ready", "pending", "failed", ... (lower case),
    and the dataset's current version number (None when the CLI did not say)."""

    status: str
    version: int | None = None

    @property
    def ready(self) -> bool:
        return self.status == DATASET_READY

    @property
    def failed(self) -> bool:
        return self.status in DATASET_FAILED_STATES


# kagglesdk's DatabundleVersionStatus, as the CLI prints it (the enum name in lower case).
DATASET_READY = "ready"
DATASET_FAILED_STATES = ("failed", "deleted")


@dataclass(frozen=True)
class KernelStatus:
    state: str
    failure_message: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


# kaggle 2.2.5 is the first CLI that sends `owner/slug/N` to the API as a version label.
VERSION_LABELS_SINCE = (2, 2, 5)
# Kaggle answers 403 "Permission 'kernels.get' was denied", not 404, for a kernel that does not
# exist (kaggle-cli PR #951), and the CLI prints the same for a 401: it cannot be told apart from
# "not yours". Callers decide what it means (a never-pushed kernel is new).
DENIED = "Permission 'kernels.get' was denied"
# The same answer about a dataset (assumed by analogy: `datasets status` of a slug that does not
# exist yet is taken as "not there", and `datasets create` then says if it is someone else's).
DENIED_GET = re.compile(r"Permission '(kernels|datasets)\.get' was denied")


class KernelNotFound(UserError):
    """Kaggle does not show the kernel (or dataset): it does not exist, or is not visible to us."""


def failed_check(failures: int, limit: int, who: str, exc: UserError) -> int:
    """One more status check failed while waiting: a flaky network must not end a long wait,
    repeated failures do. Re-raises `exc` at the `limit`-th in a row, else says it retries;
    returns the new count."""
    failures += 1
    if failures >= limit:
        raise exc
    print(f"{who}: status check failed ({exc}); retrying", file=sys.stderr)
    return failures


def cli_version() -> tuple[int, ...] | None:
    """The installed kaggle CLI's version, e.g. (2, 2, 5); None when it is not installed."""
    try:
        text = importlib.metadata.version("kaggle")
    except importlib.metadata.PackageNotFoundError:
        return None
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def _config_dir(env: Mapping[str, str]) -> Path:
    # Mirrors KaggleApi.config_dir: $KAGGLE_CONFIG_DIR, else ~/.kaggle when it exists, else XDG.
    if env.get("KAGGLE_CONFIG_DIR"):
        return Path(env["KAGGLE_CONFIG_DIR"])
    home = Path(env.get("HOME") or Path.home())
    legacy = home / ".kaggle"
    if legacy.exists() or not sys.platform.startswith("linux"):
        return legacy
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"


def find_credentials(env: Mapping[str, str] | None = None) -> Credentials:
    """The credentials the CLI would use, checked without any network call; UserError if none."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    if env.get("KAGGLE_API_TOKEN"):
        return Credentials("KAGGLE_API_TOKEN", env.get("KAGGLE_USERNAME"))
    for name in ("access_token", "access_token.txt"):
        token = home / ".kaggle" / name
        if token.is_file() and token.read_text().strip():
            return Credentials(str(token), env.get("KAGGLE_USERNAME"))
    config = _config_dir(env) / "kaggle.json"
    if config.is_file():
        try:
            data = json.loads(config.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{config}: not valid JSON ({exc}); download it again") from exc
        if isinstance(data, dict) and data.get("username") and data.get("key"):
            return Credentials(str(config), str(data["username"]))
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        return Credentials("KAGGLE_USERNAME/KAGGLE_KEY", env["KAGGLE_USERNAME"])
    oauth = home / ".kaggle" / "credentials.json"
    if oauth.is_file():
        return Credentials(str(oauth), env.get("KAGGLE_USERNAME"))
    if config.is_file():
        # The file is there but incomplete: naming it beats the generic help.
        missing = [k for k in ("username", "key") if not (isinstance(data, dict) and data.get(k))]
        raise UserError(
            f"{config}: no {' or '.join(repr(k) for k in missing)} in it; download a new API "
            "token from https://www.kaggle.com/settings/api and save it there"
        )
    raise UserError(CREDENTIALS_HELP)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def error_line(stdout: str, stderr: str) -> str:
    """The line that says what went wrong, from the CLI's whole output.

    The CLI prints the error first and hints after it ("To search for one, try 'kaggle search
    <query>'."); a crash ends with the exception line of its traceback.
    """
    for text in (stderr, stdout):
        if "Traceback (most recent call last)" in text:
            return _last_line(text)
        # Download progress bars (tqdm, carriage-return separated) are not messages.
        lines = [ln.strip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]
        lines = [ln for ln in lines if not _PROGRESS.search(ln)]
        if lines:
            return lines[0]
    return ""


_PROGRESS = re.compile(r"\d+%\|.*\|")


def parse_push_output(stdout: str) -> PushResult:
    """The version and URL from `kernels push`; UserError on "Kernel push error" (exit code 0)."""
    error = re.search(r"^Kernel push error:\s*(.*)$", stdout, re.MULTILINE)
    if error:
        raise UserError(f"Kaggle rejected the push: {error.group(1).strip()}")
    notes = tuple(
        m.group(0).strip()
        for m in re.finditer(r"^The following are not valid .*$", stdout, re.MULTILINE)
    )
    ok = re.search(
        r"Kernel version\s*(\d*)\s*successfully pushed\.\s*Please check progress at\s*(\S+)", stdout
    )
    if not ok:
        raise UserError(f"unexpected output from kaggle kernels push: {_last_line(stdout)!r}")
    version = int(ok.group(1)) if ok.group(1) else None
    return PushResult(version=version, url=ok.group(2), warnings=notes)


def parse_dataset_upload_output(stdout: str) -> str:
    """The dataset's URL from `datasets create` / `datasets version`; UserError when Kaggle
    refused the upload, which the CLI prints as "Dataset (version) creation error: ..." and
    exits 0 on."""
    error = re.search(r"^Dataset (?:version )?creation error:\s*(.*)$", stdout, re.MULTILINE)
    if error:
        reason = error.group(1).strip() or "no reason given"
        raise UserError(f"Kaggle refused the upload: {reason}; nothing was created")
    ok = re.search(r"being created\.\s*Please check progress at\s*(\S+)", stdout)
    if not ok:
        raise UserError(
            f"unexpected output from kaggle datasets create/version: {_last_line(stdout)!r}"
        )
    return ok.group(1)


def parse_dataset_status_output(stdout: str) -> DatasetState:
    """`{"status": "ready", "current_version_number": 3}` (or a bare state) -> DatasetState."""
    text = stdout.strip()
    start = text.find("{")
    if start >= 0:
        try:
            data = json.loads(text[start:])
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("status"), str):
            version = data.get("current_version_number")
            return DatasetState(
                data["status"].lower(), version if isinstance(version, int) else None
            )
    state = _last_line(text)
    if not re.fullmatch(r"[a-z_]+", state):
        raise UserError(f"unexpected output from kaggle datasets status: {state!r}")
    return DatasetState(state)


def parse_status_output(stdout: str) -> KernelStatus:
    """`O/S has status "KernelWorkerStatus.ERROR"` (+ `Failure message: "..."`) -> KernelStatus."""
    m = re.search(r'has status "(?:\w+\.)?([A-Z_]+)"', stdout)
    if not m:
        raise UserError(f"unexpected output from kaggle kernels status: {_last_line(stdout)!r}")
    failure = re.search(r'^Failure message: "(.*)"\s*$', stdout, re.MULTILINE | re.DOTALL)
    return KernelStatus(m.group(1), failure.group(1) if failure else None)


class KaggleCli:
    """Runs `python -m kaggle ...` with the current environment (or `env`).

    `version_labels`: ask for a given version's status and outputs (`owner/slug/N`); None uses
    them when the installed CLI sends them (2.2.5+). Older CLIs drop the `/N` and answer for
    the latest session, which right after a push may still be the previous version's.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 600.0,
        version_labels: bool | None = None,
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self.timeout_s = timeout_s
        if version_labels is None:
            version = cli_version()
            version_labels = version is not None and version >= VERSION_LABELS_SINCE
        self.version_labels = version_labels

    def _ref(self, ref: str, version: int | None) -> str:
        return f"{ref}/{version}" if version is not None and self.version_labels else ref

    def credentials(self) -> Credentials:
        return find_credentials(self.env)

    def run(self, args: Sequence[str], timeout_s: float | None = None) -> tuple[str, str]:
        """Run one CLI command; returns (stdout, stderr); UserError naming the failure otherwise."""
        self.credentials()
        if importlib.util.find_spec("kaggle") is None:
            raise UserError(
                "the kaggle CLI is not installed in this environment: run `make setup` "
                "(or pip install 'kaggle>=2.2.5' six)"
            )
        cmd = [sys.executable, "-m", "kaggle", "-W", *args]
        label = "kaggle " + " ".join(args[:2])
        try:
            proc = subprocess.run(
                cmd,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout_s or self.timeout_s,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise UserError(
                f"{label} did not answer within {exc.timeout:.0f} s: check the network and retry"
            ) from exc
        out, err = proc.stdout, proc.stderr
        if "Authentication required" in out:
            raise UserError(
                "Kaggle did not accept the credentials "
                f"({self.credentials().source}): create a new API token at "
                "https://www.kaggle.com/settings/api"
            )
        if proc.returncode != 0:
            whole = f"{out}\n{err}"
            reason = error_line(out, err) or f"exit code {proc.returncode}"
            denied = DENIED_GET.search(whole)
            if denied:
                # The CLI's own text is a paragraph about benchmark slugs; say it plainly.
                what = "kernel" if denied.group(1) == "kernels" else "dataset"
                raise KernelNotFound(
                    f"{label}: Kaggle denied access ({denied.group(0)}): the {what} does not "
                    "exist yet, "
                    "is not yours, or the credentials from "
                    f"{self.credentials().source} are not current"
                )
            if re.search(r"\b404\b|not found", whole, re.IGNORECASE):
                raise KernelNotFound(f"{label}: {reason}")
            if re.search(r"Connection refused|Max retries exceeded|NameResolution", whole):
                raise UserError(f"{label}: cannot reach Kaggle ({reason[:200]}); retry later")
            raise UserError(f"{label} failed: {reason[:300]}")
        if "ModuleNotFoundError" in err:
            raise UserError(f"{label}: {_last_line(err)}; run `make setup`")
        return out, err

    def push(self, kernel_dir: Path, timeout_s: float | None = None) -> PushResult:
        """Push; Kaggle's notes on dropped sources come back in `PushResult.warnings`."""
        out, _ = self.run(["kernels", "push", "-p", str(kernel_dir)], timeout_s)
        return parse_push_output(out)

    def status(self, ref: str, version: int | None = None) -> KernelStatus:
        """The state of `version`'s session where the CLI can ask for it, else of the latest."""
        out, _ = self.run(["kernels", "status", self._ref(ref, version)])
        return parse_status_output(out)

    def dataset_status(self, ref: str) -> str:
        """A dataset's state ("ready", ...); KernelNotFound when Kaggle does not show it."""
        out, _ = self.run(["datasets", "status", ref])
        return out.strip().splitlines()[-1].strip() if out.strip() else ""

    def dataset_state(self, ref: str) -> DatasetState:
        """A dataset's state and current version; KernelNotFound when Kaggle does not show it."""
        out, _ = self.run(["datasets", "status", ref, "--format", "json"])
        return parse_dataset_status_output(out)

    def dataset_upload(
        self, folder: Path, message: str | None, timeout_s: float | None = None
    ) -> str:
        """Upload `folder` (with its dataset-metadata.json) as a new private dataset when
        `message` is None, else as a new version with that message; sub-folders go up as one
        zip each (`-r zip`). Returns the dataset's URL; UserError when Kaggle refuses."""
        if message is None:
            args = ["datasets", "create", "-p", str(folder), "-r", "zip", "-q"]
        else:
            args = ["datasets", "version", "-p", str(folder), "-m", message, "-r", "zip", "-q"]
        out, _ = self.run(args, timeout_s)
        return parse_dataset_upload_output(out)

    def output(
        self, ref: str, dest: Path, version: int | None = None, timeout_s: float = 3600.0
    ) -> list[Path]:
        """Download a version's outputs and log into `dest` (see `status` for which version)."""
        dest.mkdir(parents=True, exist_ok=True)
        try:
            self.run(
                ["kernels", "output", self._ref(ref, version), "-p", str(dest), "-o"], timeout_s
            )
        except UserError as exc:
            # 2.2.5 stops on a failed file download (2.2.4 saved the error page as the file).
            failed = re.search(r"(\d{3} \w+ Error: [\w ]+) for url: \S*/([^/\s]+)$", str(exc))
            if failed:
                raise UserError(
                    f"{unquote(failed.group(2))}: the download failed ({failed.group(1)}), a "
                    "storage error that is usually transient: pull again"
                ) from None
            raise
        return sorted(p for p in dest.rglob("*") if p.is_file())
