"""Every command README.md and docs/*.md show, run the way a user types it.

The commands are read from the ```bash blocks of README.md and of every docs/*.md (continuation
lines joined, comments dropped; a command shown on several pages runs once, named after the first)
and each one is run by the runner registered for its sub-command in ``RUNNERS``, as a subprocess
of the installed ``pi-axera-sd`` console script (``PATH`` starts with this venv's ``bin``). A
command whose sub-command has no runner fails the test: a new command needs a new runner here (one
entry in ``RUNNERS``). Commands named in the pages' running text must exist.

What stands in for the outside world, and the only edits made to a command:

- hub ids (``stable-diffusion-v1-5/...``, ``openai/clip-...``) are local folders of the same name
  in the command's working directory, holding tiny random models (diffusers and transformers load
  a local folder before asking a hub); ``models pull`` talks to ``tests/hubserver.py`` through
  ``HF_ENDPOINT``;
- ports 5000/5001 become a free port (``localhost:5000`` -> ``127.0.0.1:<port>``, ``--port N``) so
  parallel test runs never collide;
- ``loadtest`` runs fewer requests per configuration (``--requests 3``, ``--duration 20``) so a sweep
  takes seconds on the tiny model;
- ``make`` targets: the install lines are dry-run (``make -n``; no package index in tests) and the
  lines after them, which run this install's ``pi-axera-sd``, are run for real;
- ``sudo`` lines are checked, part by part, against the files the pages' ``pi-axera-sd systemd``
  and ``pi-axera-sd haproxy`` lines write (what they copy exists, the units they name are written),
  not run;
- ``models quantize`` runs on the tiny model; ``python scripts/...`` runs in a scratch folder holding
  a copy of ``scripts/``, and what it writes is compared with the committed file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from PIL import Image

from support.hubserver import FakeHub
from support.server import free_port, wait_ready

# Every test here drives the installed CLI on models built through torch (see conftest's fast tier).
pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
TIMEOUT = 300


# ---- reading the pages --------------------------------------------------------------------------


def readme_commands(text: str) -> list[str]:
    """The shell commands of a page's ```bash blocks, one string per command."""
    commands: list[str] = []
    for block in re.findall(r"^\s*```bash\n(.*?)^\s*```", text, flags=re.S | re.M):
        pending = ""
        for raw in block.splitlines():
            line = raw.strip()
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = pending + line
            pending = ""
            if shlex.split(line, comments=True):
                commands.append(strip_comment(line))
    return commands


def strip_comment(line: str) -> str:
    """``make serve   # creates .venv`` -> ``make serve`` (a ``#`` inside quotes is kept)."""
    words = shlex.split(line, comments=True)
    for match in re.finditer(r"\s#", line):
        head = line[: match.start()]
        try:
            if shlex.split(head) == words:
                return head.strip()
        except ValueError:  # the '#' sits inside an open quote
            continue
    return line.strip()


def runner_key(command: str) -> str:
    """``pi-axera-sd models pull axera`` -> ``pi-axera-sd models pull``; ``make serve`` -> ``make serve``."""
    words = shlex.split(command)
    head = words[0]
    if head == "pi-axera-sd":
        positional = [w for w in words[1:] if not w.startswith("-")]
        depth = 2 if positional[:1] == ["models"] else 1
        return " ".join(["pi-axera-sd", *positional[:depth]])
    if head in ("make", "sudo"):
        return f"{head} {words[1]}"
    return head


def page_name(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def shown(read: Callable[[str], list[str]]) -> list[tuple[str, str]]:
    """``(page, command)`` for each command ``read`` finds in the pages, once (its first page)."""
    first: dict[str, str] = {}
    for path in PAGES:
        for command in read(path.read_text(encoding="utf-8")):
            first.setdefault(command, page_name(path))
    return [(page, command) for command, page in first.items()]


SHOWN = shown(readme_commands)
COMMANDS = [command for _, command in SHOWN]


def ids_of(pairs: list[tuple[str, str]]) -> list[str]:
    """``models.md: pi-axera-sd models pull openvino``: the page, then the command (its start and end
    when it is long)."""
    ids = []
    for page, command in pairs:
        words = " ".join(command.split())
        short = words if len(words) <= 80 else f"{words[:50]} ... {words[-25:]}"
        ids.append(f"{page.removeprefix('docs/')}: {short}")
    return ids


# ---- what the runners share ---------------------------------------------------------------------


@dataclass
class Env:
    """A user's shell: this venv's bin first on PATH, no hub, a scratch working directory."""

    cwd: Path
    vars: dict[str, str] = field(default_factory=dict)

    def run(
        self, command: str, *, cwd: Path | None = None, timeout: float = TIMEOUT
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=cwd or self.cwd,
            env=self.vars,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, command: str, *, cwd: Path | None = None, port: int) -> Iterator[str]:
        """Run a serving command until the caller is done with its URL."""
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=cwd or self.cwd,
            env={**self.vars, "PORT": str(port)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc=proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, f"{command} exited {proc.returncode}"


# What a make that runs this suite (make test, or make lock's VENV=... LOCK=...) hands its children,
# through MAKEFLAGS and as environment variables; a user's shell has none of them.
MAKE_VARS = (
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "MAKEOVERRIDES",
    *re.findall(
        r"^([A-Z_]+) \?=", (Path(__file__).resolve().parents[2] / "Makefile").read_text(), flags=re.M
    ),
)


def user_env(cwd: Path, **extra: str) -> Env:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "PI_AXERA_SD_", "MODELS_DIR")) and k not in MAKE_VARS
    }
    path = f"{BIN}{os.pathsep}{clean.get('PATH', '')}"
    return Env(
        cwd,
        {
            **clean,
            "PATH": path,
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(cwd / ".hf-home"),
            # the default OpenVINO model cache (under XDG_CACHE_HOME) lands in this test's folder
            "XDG_CACHE_HOME": str(cwd / ".cache"),
            "PI_AXERA_SD_CLIP_DIR": str(cwd / "no-clip"),
            **extra,
        },
    )


def ok(run: subprocess.CompletedProcess, command: str) -> subprocess.CompletedProcess:
    assert run.returncode == 0, (
        f"{command}\nexit {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    )
    assert "Traceback" not in run.stderr, run.stderr
    return run


def with_port(command: str, port: int) -> str:
    command = re.sub(r"(localhost|127\.0\.0\.1):5000\b", f"127.0.0.1:{port}", command)
    return re.sub(r"--port \d+", f"--port {port}", command)


@dataclass
class Context:
    """Fixtures a runner may use (built lazily by pytest)."""

    tmp: Path
    request: pytest.FixtureRequest

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)

    def workspace(self, with_models: bool = True) -> Env:
        """A directory holding ``models/`` (the tiny model), as after ``pull`` or ``export``."""
        if with_models:
            shutil.copytree(self.fixture("tiny_model_dir"), self.tmp / "models")
        return user_env(self.tmp)


Runner = Callable[[str, Context], None]


# ---- runners, one per sub-command ---------------------------------------------------------------


def _board_files(model: Path, folder: str = "models") -> dict[str, bytes]:
    """The tiny model as AXERA's repo holds it: under ``folder``, ``.axmodel`` beside each ``.onnx``."""
    files = {
        f"{folder}/{p.relative_to(model).as_posix()}": p.read_bytes()
        for p in model.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    for rel in [r for r in files if r.endswith(".onnx")]:
        files[rel.removesuffix(".onnx") + ".axmodel"] = files[rel]  # stand-ins for the compiled graphs
    return files


def run_pull(command: str, ctx: Context) -> None:
    from pi_axera_sd.modeltools.hub import resolve_spec

    spec = shlex.split(command)[3]
    env = ctx.workspace(with_models=False)
    with FakeHub() as hub:
        if spec.startswith("openvino"):  # the CPU presets: the tiny LCM model as OpenVINO IR
            model = ctx.fixture("tiny_optimum_ov_dir")
            files = {p.relative_to(model).as_posix(): p.read_bytes() for p in model.rglob("*") if p.is_file()}
            hub.add_repo(resolve_spec(spec).repo_id, files)
            expected = ctx.tmp / "models" / "unet" / "openvino_model.xml"
        elif "--resolution" in command:  # a repo holding several sizes
            model = ctx.fixture("tiny_model_dir")
            hub.add_repo(spec, {**_board_files(model), **_board_files(model, "models_320x320")})
            expected = ctx.tmp / "models" / "unet.axmodel"
        else:
            hub.add_repo(resolve_spec(spec).repo_id, _board_files(ctx.fixture("tiny_model_dir")))
            expected = ctx.tmp / "models" / "unet.axmodel"
        env.vars.update({"HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0"})
        out = ok(env.run(command), command)
    assert expected.is_file(), out.stdout


def run_verify(command: str, ctx: Context) -> None:
    out = ok(ctx.workspace().run(command), command).stdout
    if "--json" in command:
        report = json.loads(out)
        assert report["ok"] is True, report
    else:
        assert re.search(r"^unet .*OK", out, flags=re.M), out


def run_export(command: str, ctx: Context) -> None:
    """The hub ids of the command, as local folders of tiny random weights."""
    from pi_axera_sd.modeltools.random_sd import add_random_lora, build_sd_pipeline, build_taesd

    words = shlex.split(command)
    source = ctx.tmp / words[3]
    pipe = build_sd_pipeline("tiny", seed=3)
    pipe.save_pretrained(source)
    if "--lora" in words:
        add_random_lora(pipe, ctx.tmp / words[words.index("--lora") + 1])
    if "--tiny-vae" in words:
        build_taesd("tiny", seed=3).save_pretrained(ctx.tmp / words[words.index("--tiny-vae") + 1])
    ok(ctx.workspace(with_models=False).run(command), command)
    out = ctx.tmp / words[4]
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / "unet.onnx").is_file() and manifest["lora"] == words[words.index("--lora") + 1]
    assert (out / "vae_decoder_tiny.onnx").is_file() == ("--tiny-vae" in words)
    assert (out / "vae_encoder_tiny.onnx").is_file() == ("--tiny-vae" in words)
    for name in ("unet_deep.onnx", "unet_shallow.onnx"):
        assert (out / name).is_file() == ("--deep-cache" in words), name


def run_export_clip(command: str, ctx: Context) -> None:
    words = shlex.split(command)
    ctx.fixture("tiny_clip").save_pretrained(ctx.tmp / words[3])
    ok(ctx.workspace(with_models=False).run(command), command)
    assert any((ctx.tmp / words[4]).glob("clip_base_vision.*")), list((ctx.tmp / words[4]).iterdir())


def run_serve(command: str, ctx: Context) -> None:
    port = free_port()
    env = ctx.workspace()
    for url in env.start(with_port(command, port), port=port):
        health = httpx.get(f"{url}/health", timeout=30).json()
        # runtime=auto (the default) picks OpenVINO where it is installed, as in this venv
        assert health["status"] == "ok" and health["runtime"] == "openvino", health
        options = httpx.get(f"{url}/sdapi/v1/options", timeout=30).json()
        assert options["pi_axera_sd_runtime"]["runtime"] == "openvino", options
        check_offline_docs(url)


def check_offline_docs(url: str) -> None:
    """README: "API docs: http://127.0.0.1:5000/docs", which must work on a board without internet."""
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{url}{page}", timeout=30).text
        assets = re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css))["']""", html)
        assert assets, html
        for asset in assets:
            assert asset.startswith("/"), f"{page} loads {asset} from elsewhere"
            assert httpx.get(f"{url}{asset}", timeout=30).status_code == 200, asset


def run_generate(command: str, ctx: Context) -> None:
    if "--deep-cache" in shlex.split(command):  # the tiny model exported with the DeepCache pair
        from pi_axera_sd.modeltools.export_sd import export_pipeline

        pipe, taesd = ctx.fixture("tiny_pipe"), ctx.fixture("tiny_taesd")
        export_pipeline(pipe, ctx.tmp / "models", tiny_vae=taesd, deep_cache=True)
        env = ctx.workspace(with_models=False)
    else:
        env = ctx.workspace()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(ctx.tmp / "photo.jpg")
    out = ok(env.run(command), command).stdout
    output = shlex.split(command)[shlex.split(command).index("-o") + 1]
    with Image.open(ctx.tmp / output) as image:
        assert image.format == "PNG" and "seed:" in out


def run_systemd(command: str, ctx: Context) -> None:
    env = ctx.workspace()
    ok(env.run(command), command)
    unit = (ctx.tmp / "pi_axera_sd_generator.service").read_text()
    assert f"ExecStart={BIN / 'pi-axera-sd'} serve" in unit, unit


def _generators() -> list[str]:
    """The lines that write what the pages' ``sudo`` lines install (the first of each kind)."""
    found: dict[str, str] = {}
    for command in COMMANDS:
        key = runner_key(command)
        if key in ("pi-axera-sd systemd", "pi-axera-sd haproxy"):
            found.setdefault(key, command)
    return list(found.values())


def run_sudo(command: str, ctx: Context) -> None:
    """Needs root: each part is checked against the files the pages' generator lines write."""
    import glob

    from pi_axera_sd.deploy.haproxy import INSTANCE_ENV_DIR, TEMPLATE_NAME
    from pi_axera_sd.deploy.systemd import UNIT_NAME

    env = ctx.workspace(with_models=False)
    for line in _generators():
        ok(env.run(line), line)
    template = TEMPLATE_NAME.removesuffix(".service")  # pi-axera-sd@
    units = {UNIT_NAME.removesuffix(".service"), "haproxy"}
    units |= {f"{template}{p.stem}" for p in ctx.tmp.rglob("*.env")}
    for part in command.split("&&"):
        words = shlex.split(part)
        assert words[0] == "sudo", part
        verb, args = words[1], words[2:]
        if verb == "cp":
            *sources, dest = args
            for source in sources:
                assert glob.glob(str(ctx.tmp / source)), f"{part}: nothing written at {source}"
            assert dest.startswith(("/etc/systemd/system/", "/etc/haproxy/", INSTANCE_ENV_DIR)), part
        elif verb == "mkdir":
            assert args[-1] == INSTANCE_ENV_DIR, part
        elif verb == "apt-get":
            assert args == ["install", "haproxy"], part
        elif verb in ("systemctl", "journalctl"):
            names = [a.removesuffix(".service") for a in args if not a.startswith("-")]
            names = [n for n in names if n not in ("daemon-reload", "enable", "start", "restart", "stop")]
            assert names or args == ["daemon-reload"], part
            assert all(n in units for n in names), f"{part}: {names} not among the written units {units}"
        else:
            raise AssertionError(f"unexpected sudo command: {part}")


def run_haproxy(command: str, ctx: Context) -> None:
    """Writes the configuration and units; HAProxy itself checks the configuration it wrote."""
    env = ctx.workspace(with_models=False)
    ok(env.run(command), command)
    out = ctx.tmp / shlex.split(command)[shlex.split(command).index("-o") + 1]
    config = out / "haproxy.cfg"
    assert config.is_file() and (out / "pi-axera-sd@.service").is_file() == ("--instance" in command)
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    check = subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def _values_of(key: str, data: object) -> Iterator[object]:
    if isinstance(data, dict):
        for k, v in data.items():
            if k == key:
                yield v
            yield from _values_of(key, v)
    elif isinstance(data, list):
        for item in data:
            yield from _values_of(key, item)


def run_loadtest(command: str, ctx: Context) -> None:
    """Against the served tiny model (``--url``) or instances it starts itself (``--models``)."""
    short = re.sub(r"--requests \d+", "--requests 3", re.sub(r"--duration \d+", "--duration 20", command))
    if "--url" in command:
        served = ctx.fixture("served_url")
        env, short = user_env(ctx.tmp), with_port(short, int(served.rsplit(":", 1)[1]))
    else:
        env = ctx.workspace()
    ok(env.run(short, timeout=TIMEOUT), short)
    words = shlex.split(command)
    out = ctx.tmp / (words[words.index("--out") + 1] if "--out" in words else "loadtest-results")
    report = json.loads((out / "loadtest.json").read_text())
    lost = list(_values_of("lost", report))
    assert lost and not any(lost), report  # every request got an HTTP answer
    assert (out / "loadtest.md").is_file() and (out / "throughput.png").is_file()


def run_curl(command: str, ctx: Context) -> None:
    assert shutil.which("curl"), "curl is not installed: the pages' curl examples cannot be checked"
    served = ctx.fixture("served_url")
    port = int(served.rsplit(":", 1)[1])
    if "@inpaint.json" in command:  # the user's own request file (the page's python block makes one)
        write_inpaint_request(ctx.tmp / "inpaint.json")
    out = ok(user_env(ctx.tmp).run(with_port(command, port), timeout=120), command).stdout.strip()
    assert out, command
    size = ctx.fixture("tiny_engine").width  # the served model's own size, whatever was asked
    if "all_seeds" in command:  # A1111 batch: two images, seeds 42 and 43
        count, seeds = out.split(" ", 1)
        assert int(count) == 2 and json.loads(seeds) == [42, 43], out
    elif "/v1/images/generations" in command:  # OpenAI: the actual size in the answer, the seed
        assert out == f"{size}x{size} 42", out
    elif "return_base64" in command:  # AXERA's sample dialect: width, height, seed
        assert out == f"{size} {size} 42", out
    elif "@inpaint.json" in command:  # inpainting: one image, nothing the model did not follow
        assert out == "1 []", out
    else:
        assert isinstance(json.loads(out), dict), out


def write_inpaint_request(path: Path) -> None:
    """What the page's snippet writes from photo.png and mask.png: a noise image, a centre box."""
    import base64
    import io

    import numpy as np

    def b64(image: Image.Image) -> str:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return base64.b64encode(buf.getvalue()).decode()

    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    mask = np.zeros((128, 128), np.uint8)
    mask[32:96, 32:96] = 255
    body = {"prompt": "a red fox", "init_images": [b64(photo)], "mask": b64(Image.fromarray(mask))}
    path.write_text(json.dumps({**body, "mask_blur": 4, "denoising_strength": 0.75}))


def run_pip(command: str, ctx: Context) -> None:
    """Not run (needs a package index): the install must pin a CPU torch, not PyPI's CUDA build."""
    words = shlex.split(command)
    assert words[:2] == ["pip", "install"], command
    index = words[words.index("--extra-index-url") + 1] if "--extra-index-url" in words else ""
    assert index.startswith("https://download.pytorch.org/whl/cpu"), command
    constraints = ROOT / words[words.index("-c") + 1]
    assert re.search(r"^torch==", constraints.read_text(), flags=re.M), constraints


def run_make(command: str, ctx: Context) -> None:
    """Install lines dry-run; the ``pi-axera-sd`` lines the target then runs are run for real."""
    target = shlex.split(command)[1]
    env = ctx.workspace()
    env.vars["VENV"] = str(BIN.parent)
    env.vars["MODELS_DIR"] = str(ctx.tmp / "models")
    env.vars["DEMO_MODELS"] = str(ctx.tmp / "demo-models")
    dry = ok(env.run(f"make -n {target}", cwd=ROOT), command).stdout.splitlines()
    tool = f"{BIN}/pi-axera-sd"
    lines = [line for line in dry if tool in line]
    if target == "test":
        assert any("pytest" in line for line in dry) and any("ruff check" in line for line in dry), dry
        return  # the suite itself: running it here would recurse
    if target == "test-fast":  # the unit tier without torch: collected here (the suite runs it)
        assert any('pytest tests/unit -m "not torch"' in line for line in dry), dry
        run = ok(
            env.run(
                f'{BIN}/python -m pytest tests/unit -m "not torch" --collect-only -q -p no:cacheprovider',
                cwd=ROOT,
            ),
            command,
        )
        assert int(re.search(r"(\d+)/\d+ tests collected", run.stdout).group(1)) > 200, run.stdout[-500:]
        return
    if target in ("haproxy", "chromium"):  # Debian packages the tests need: present afterwards
        ok(env.run(f"make {target}", cwd=ROOT), command)
        assert (
            shutil.which(target)
            or Path(f"/usr/sbin/{target}").exists()
            or Path(f"/usr/bin/{target}").exists()
        )
        return
    assert lines and lines[-1].split(tool, 1)[1].split()[0] == "serve", dry
    for line in lines[:-1]:
        ok(env.run(line, cwd=ROOT), line)
    port = free_port()
    for url in env.start(lines[-1], cwd=ROOT, port=port):
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200


def run_make_lock(command: str, ctx: Context) -> None:
    """Dry-run (a refresh installs today's releases and runs the whole suite): a fresh venv from
    constraints.txt only, the suite run against the new lock, and the lock replaced only after it."""
    dry = ok(ctx.workspace().run("make -n lock", cwd=ROOT), command).stdout
    steps = [
        "python3 -m venv .venv-lock",
        "pip install --quiet -c constraints.txt",
        "pip freeze --exclude-editable",
        "make test VENV=.venv-lock LOCK=requirements.lock.new",
        "mv requirements.lock.new requirements.lock",
    ]
    where = [dry.find(step) for step in steps]
    assert -1 not in where and where == sorted(where), dict(zip(steps, where, strict=True))


def run_quantize(command: str, ctx: Context) -> None:
    """INT8 OpenVINO variants of the tiny model, one per component named, recorded in the manifest."""
    from pi_axera_sd.modeltools.quantize import COMPONENTS

    env = ctx.workspace()
    ok(env.run(command, timeout=2 * TIMEOUT), command)
    words = shlex.split(command)
    folder = ctx.tmp / words[3]
    at = words.index("--components") + 1 if "--components" in words else len(words)
    components = [w for w in words[at:] if not w.startswith("-")] or list(COMPONENTS)
    variants = json.loads((folder / "manifest.json").read_text())["variants"]["int8"]["components"]
    for name in components:
        assert (folder / f"{name}.int8.xml").is_file(), name
        assert variants[name]["file"] == f"{name}.int8.xml", variants


def run_python(command: str, ctx: Context) -> None:
    """``python scripts/X.py > FILE``: run in a scratch folder with a copy of ``scripts/``; what it
    writes must be the committed ``FILE`` (a generated page that is up to date)."""
    words = shlex.split(command)
    assert words[1].startswith("scripts/") and words[2] == ">", command
    target = words[3]
    shutil.copytree(ROOT / "scripts", ctx.tmp / "scripts")
    (ctx.tmp / target).parent.mkdir(parents=True, exist_ok=True)
    ok(user_env(ctx.tmp).run(command), command)
    assert (ctx.tmp / target).read_text(encoding="utf-8") == (ROOT / target).read_text(encoding="utf-8"), (
        f"{target} is stale: run {command}"
    )


def run_pytest(command: str, ctx: Context) -> None:
    """``.venv/bin/pytest -k diffusers -s``: collected, not run again (it is part of this suite)."""
    words = shlex.split(command)
    assert words[0] == ".venv/bin/pytest", command
    run = subprocess.run(
        [str(BIN / "pytest"), *words[1:], "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0 and "diffusers" in run.stdout, run.stdout


RUNNERS: dict[str, Runner] = {
    "pi-axera-sd models pull": run_pull,
    "pi-axera-sd models verify": run_verify,
    "pi-axera-sd models export": run_export,
    "pi-axera-sd models export-clip": run_export_clip,
    "pi-axera-sd serve": run_serve,
    "pi-axera-sd generate": run_generate,
    "pi-axera-sd systemd": run_systemd,
    "sudo cp": run_sudo,
    "sudo systemctl": run_sudo,
    "sudo journalctl": run_sudo,
    "curl": run_curl,
    "pip": run_pip,
    "make serve": run_make,
    "make demo": run_make,
    "make test": run_make,
    "make test-fast": run_make,
    "make haproxy": run_make,
    "make chromium": run_make,
    "make lock": run_make_lock,
    "pi-axera-sd loadtest": run_loadtest,
    "pi-axera-sd haproxy": run_haproxy,
    "sudo apt-get": run_sudo,
    "sudo mkdir": run_sudo,
    ".venv/bin/pytest": run_pytest,
    "pi-axera-sd models quantize": run_quantize,
    "python": run_python,
}


# ---- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_url(tiny_model_dir, tmp_path_factory) -> Iterator[str]:
    """One ``pi-axera-sd serve`` of the tiny model for the curl examples."""
    env = user_env(tmp_path_factory.mktemp("curl"), MODELS_DIR=str(tiny_model_dir))
    port = free_port()
    yield from env.start("pi-axera-sd serve", port=port)


def test_the_pages_have_commands():
    keys = {runner_key(c) for c in COMMANDS}
    assert {"pi-axera-sd serve", "pi-axera-sd models export", "make serve", "curl"} <= keys, keys
    readme = {runner_key(c) for c in readme_commands(README.read_text(encoding="utf-8"))}
    assert {"make serve", "make test", "make demo", "curl"} <= readme, readme


@pytest.mark.parametrize("command", COMMANDS, ids=ids_of(SHOWN))
def test_readme_command(command: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    key = runner_key(command)
    runner = RUNNERS.get(key)
    assert runner, f"command without a test: {command!r} (add a runner for {key!r} to RUNNERS)"
    runner(command, Context(tmp_path, request))


def inline_commands(text: str) -> list[str]:
    """Commands mentioned in a page's running text (`pi-axera-sd models quantize DIR`...)."""
    spans = re.findall(r"`((?:[A-Z_]+=\S+ )?(?:pi-axera-sd|make) [^`]+)`", text)
    return [" ".join(re.sub(r"^[A-Z_]+=\S+ ", "", span).split()) for span in spans if "serving" not in span]


MENTIONED = shown(inline_commands)
INLINE = [command for _, command in MENTIONED]


@pytest.mark.parametrize("command", INLINE, ids=ids_of(MENTIONED))
def test_readme_mentions_only_commands_that_exist(command: str) -> None:
    """A sub-command or make target named in the text exists (a renamed one is a red test)."""
    from pi_axera_sd.cli import build_parser

    words = command.split()
    if words[0] == "make":
        env = {**{k: v for k, v in os.environ.items() if k not in MAKE_VARS}, "VENV": str(BIN.parent)}
        dry = subprocess.run(["make", "-n", words[1]], cwd=ROOT, env=env, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr
        return
    parser = build_parser()
    for word in [w for w in words[1:] if not w.startswith("-")][:2]:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or word == "...":
            break
        assert word in sub.choices, f"{command!r}: no sub-command {word!r}"
        parser = sub.choices[word]
