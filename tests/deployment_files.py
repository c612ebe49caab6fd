"""The deployment files (Dockerfile, .dockerignore, docker-compose.yml, deploy/helm/) read as data,
and what they name checked against the code: commands and their options, ports, modules,
environment variables and secrets. Each check returns its findings, one sentence each; empty
means the files agree with the code."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path, PurePosixPath
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import click
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "docker-compose.yml"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
HELM_MANIFESTS = ROOT / "deploy" / "helm" / "platform.yaml"
# Dagster's chart runs the code location's gRPC server with these before `dagsterApiGrpcArgs`
# (helm/dagster/charts/dagster-user-deployments/templates/deployment-user.yaml).
HELM_GRPC_PREFIX = ("dagster", "api", "grpc", "-h", "0.0.0.0", "-p")  # noqa: S104 (a pod's)
# The chart's DAGSTER_HOME in every pod it starts, unless `global.dagsterHome` says otherwise.
HELM_DAGSTER_HOME = "/opt/dagster/dagster_home"


# -- commands ----------------------------------------------------------------------------------


class CommandError(ValueError):
    """A command line names an executable, subcommand, option, module or name that does not
    exist, or gives an option a value it refuses."""


@dataclass(frozen=True)
class Invocation:
    """A command line resolved against the code: the command path and its parsed parameters."""

    path: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> int | None:
        """The TCP port the command listens on (its `--port`), if it has one."""
        port = self.params.get("port")
        return int(port) if port is not None else None


def resolve(argv: Sequence[str], files: Mapping[str, Path] | None = None) -> Invocation:
    """Resolve a command line as the image would run it: a console script of the venv and its
    click subcommands and options, or `python -m MODULE` / `python -c CODE`. `files`: the
    repository's files that are mounted into the container, by their path there (an option that
    wants an existing file is checked against the repository's)."""
    if files:
        argv = [str(files[word]) if word in files else word for word in argv]
    if not argv:
        raise CommandError("an empty command")
    executable = PurePosixPath(argv[0]).name
    if executable in ("python", "python3"):
        return _resolve_python(list(argv[1:]))
    command = _console_script(executable)
    ctx = click.Context(command, info_name=executable)
    path = [executable]
    rest = list(argv[1:])
    while isinstance(command, click.Group):
        if rest and rest[0] in command.get_help_option_names(ctx):
            return Invocation(tuple(path))
        if not rest or rest[0].startswith("-"):
            raise CommandError(f"`{shlex.join(argv)}`: {' '.join(path)} needs a subcommand")
        name = rest.pop(0)
        sub = command.get_command(ctx, name)
        if sub is None:
            raise CommandError(
                f"`{shlex.join(argv)}`: {' '.join(path)} has no subcommand {name!r} (it has: "
                f"{', '.join(command.list_commands(ctx))})"
            )
        path.append(name)
        command = sub
        ctx = click.Context(command, info_name=name, parent=ctx)
    try:
        parsed = command.make_context(path[-1], rest, parent=ctx.parent)
    except click.ClickException as exc:
        raise CommandError(f"`{shlex.join(argv)}`: {exc.format_message()}") from None
    return Invocation(tuple(path), parsed.params)


def _console_script(name: str) -> click.Command:
    """The click command behind a console script of this environment (the image installs the
    same distributions at the same versions: constraints.txt)."""
    found = [ep for ep in entry_points(group="console_scripts") if ep.name == name]
    if not found:
        raise CommandError(f"no executable {name!r} is installed (no console script of that name)")
    target = found[0].load()
    if isinstance(target, click.Command):
        return target
    # A wrapper function (dagster's `main` calls `cli(...)`): the click command it calls.
    function = inspect.unwrap(target)
    names = function.__code__.co_names
    commands = [function.__globals__[n] for n in names if n in function.__globals__]
    clicks = [c for c in commands if isinstance(c, click.Command)]
    if len(clicks) != 1:
        raise CommandError(f"cannot tell which click command {name!r} runs")
    return clicks[0]


def _resolve_python(args: list[str]) -> Invocation:
    if len(args) >= 2 and args[0] == "-m":
        if importlib.util.find_spec(args[1]) is None:
            raise CommandError(f"`python -m {args[1]}`: no module {args[1]!r}")
        return Invocation(("python", "-m", args[1]))
    if len(args) == 2 and args[0] == "-c":
        check_python_code(args[1])
        return Invocation(("python", "-c"))
    raise CommandError(f"`python {shlex.join(args)}`: expected -m MODULE or -c CODE")


def check_python_code(code: str) -> None:
    """Every `import` and `from ... import` of the code names a module that exists and, for the
    latter, a name the module defines (read from its source, without importing it)."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                _module_source(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            defined = _top_level_names(_module_source(node.module))
            for alias in node.names:
                if alias.name not in defined:
                    raise CommandError(f"{node.module} defines no {alias.name!r}")


def _module_source(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise CommandError(f"no module {module!r}")
    return Path(spec.origin).read_text()


def _top_level_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def class_exists(module: str, name: str) -> bool:
    """Whether `module` defines `name` (for the classes Dagster's instance config names)."""
    try:
        return hasattr(importlib.import_module(module), name)
    except ImportError:
        return False


def http_check_url(argv: Sequence[str]) -> tuple[int, str] | None:
    """The port and path a `python -c "...urlopen('http://127.0.0.1:PORT/PATH')..."` health
    check asks, or None for another kind of check."""
    if len(argv) == 3 and PurePosixPath(argv[0]).name.startswith("python") and argv[1] == "-c":
        found = re.search(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/[^'\"\s]*)", argv[2])
        if found:
            return int(found.group(1)), found.group(2)
    return None


# -- environment -------------------------------------------------------------------------------

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} (compose's interpolation).
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
# What a ${VAR} without a default stands for in the checks: a value the operator provides.
PROVIDED = "provided-by-operator"


def interpolate(value: str) -> str:
    """A compose value with each ${VAR} replaced by its default, or by PROVIDED when the host's
    environment or .env must give it."""

    def replace(match: re.Match[str]) -> str:
        operator, default = match.group(2), match.group(3)
        if operator in (":-", "-"):
            return default or ""
        return PROVIDED

    return _REFERENCE.sub(replace, value.replace("$$", "$"))


def is_reference(value: str) -> bool:
    """Whether a value is wholly a ${VAR} reference (a secret's only allowed form in compose)."""
    match = _REFERENCE.fullmatch(value)
    return match is not None and match.group(2) not in (":-", "-")


def dagster_variables() -> dict[str, str | None]:
    """The variables every Dagster process of a deployment needs, from the code: $DAGSTER_HOME,
    the instance profile (production) and every variable the production profile's dagster.yaml
    reads (`{env: NAME}`), with the value the profile needs (None: any value)."""
    from integration_platform.orchestration import instance

    config = yaml.safe_load(instance.PROFILE_FILES[instance.PRODUCTION].read_text())
    needed: dict[str, str | None] = {
        "DAGSTER_HOME": None,
        instance.PROFILE_VARIABLE: instance.PRODUCTION,
    }
    needed.update(dict.fromkeys(instance._env_references(config)))
    return needed


def run_variables() -> set[str]:
    """What the platform's code reads where runs execute (and the API): the client store (a
    client's credentials) and the key its credentials are encrypted with."""
    from integration_platform.clients.crypto import SECRET_KEY_VARIABLE
    from integration_platform.clients.database import DATABASE_URL_VARIABLE

    return {DATABASE_URL_VARIABLE, SECRET_KEY_VARIABLE}


def worker_variables() -> set[str]:
    """What a celery worker (`integration-platform workers`) needs: the broker (without it the
    command refuses to start, and the definitions it loads would plan a raw asset as one step,
    not the extract and load steps the run sends), and what the steps it runs read, as a run's."""
    from integration_platform.celery_workers import BROKER_URL_VARIABLE

    return run_variables() | {BROKER_URL_VARIABLE}


def chart_instance_variables(values: Mapping[str, Any]) -> dict[str, str | None]:
    """The variables the dagster.yaml the chart writes reads (`{env: NAME}`): a worker opens the
    run's instance from the reference the run sends it, which keeps those names, so the worker
    needs them in its own environment (the chart sets them only in the pods it starts)."""
    from integration_platform.orchestration import instance

    return dict.fromkeys(instance._env_references(chart_instance_config(values)))


def step_storage(code_server: Workload) -> PurePosixPath | None:
    """Where the runs of this code server keep their steps' outputs (Dagster's default IO
    manager, under $DAGSTER_HOME/storage): each worker writes or reads them there, through the
    instance reference the run sends it."""
    home = code_server.environment.get("DAGSTER_HOME")
    return PurePosixPath(home) / "storage" if home else None


def landing_path(environment: Mapping[str, str]) -> PurePosixPath | str:
    """The landing zone's folder with exactly this environment, or its URL on object storage."""
    from integration_platform import environment as platform_environment
    from integration_platform.landing.zone import is_object_storage, landing_root

    with mock.patch.dict(os.environ, environment, clear=True):
        root = landing_root(platform_environment.landing_url())
    return str(root) if is_object_storage(root) else PurePosixPath(str(root))


def api_variables() -> set[str]:
    """The API's settings (api/settings.py: the store, Dagster's webserver, the published copy)
    and its keys: without DAGSTER_WEBSERVER_URL it would look for Dagster on its own loopback,
    without DATABASE_URL keep clients in SQLite inside its container, without the admin key no
    one could call it, and without the production profile's variables its readiness would not
    ask Dagster's storage."""
    from integration_platform.clients.api_keys import ADMIN_KEY_VARIABLE
    from integration_platform.orchestration.dagster_graphql import WEBSERVER_URL_VARIABLE
    from integration_platform.orchestration.instance import POSTGRES_URL_VARIABLE, PROFILE_VARIABLE

    return run_variables() | {
        WEBSERVER_URL_VARIABLE,
        ADMIN_KEY_VARIABLE,
        PROFILE_VARIABLE,
        POSTGRES_URL_VARIABLE,
    }


@dataclass(frozen=True)
class ApiView:
    """What the API's settings resolve to in a service's environment."""

    database_url: str
    dagster_url: str
    published_warehouse: PurePosixPath
    dagster_storage_url: str | None


def api_settings(environment: Mapping[str, str]) -> ApiView:
    """`ApiSettings.from_environment()` evaluated with exactly this environment."""
    from integration_platform.api.settings import ApiSettings
    from integration_platform.orchestration.instance import (
        POSTGRES_URL_SCHEME,
        POSTGRES_URL_VARIABLE,
    )

    if environment.get(POSTGRES_URL_VARIABLE) == PROVIDED:  # a Secret's: its scheme is unseen
        environment = {
            **environment,
            POSTGRES_URL_VARIABLE: f"{POSTGRES_URL_SCHEME}{PROVIDED}@secret/dagster",
        }
    with mock.patch.dict(os.environ, environment, clear=True):
        settings = ApiSettings.from_environment()
    return ApiView(
        settings.database_url,
        settings.dagster_url,
        PurePosixPath(settings.published_warehouse),
        settings.dagster_storage_url,
    )


def warehouse_path(environment: Mapping[str, str]) -> PurePosixPath:
    """Where the code puts the warehouse with exactly this environment."""
    from integration_platform import environment as platform_environment

    with mock.patch.dict(os.environ, environment, clear=True):
        return PurePosixPath(platform_environment.warehouse_path())


def secret_findings(where: str, name: str, value: str, *, reference_ok: bool) -> list[str]:
    """A literal secret: the value of a variable whose name says it is a credential (the
    platform's own test, logs.is_secret_variable), or the password of a URL, that is not a
    reference (${VAR} in compose; a Secret in Kubernetes, where no value may be written)."""
    from integration_platform.logs import is_secret_variable

    findings = []
    if is_secret_variable(name) and not (reference_ok and is_reference(value)):
        findings.append(f"{where}: {name} is written as a literal; it must come from a secret")
    password = urlsplit(value).password if "://" in value else None
    if password and not (reference_ok and is_reference(password)):
        findings.append(f"{where}: {name} holds a literal password; it must come from a secret")
    return findings


# -- Dockerfile --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    arguments: str

    def words(self) -> list[str]:
        """The arguments, JSON (exec) form or shell words."""
        text = self.arguments.strip()
        if text.startswith("["):
            return list(yaml.safe_load(text))
        return shlex.split(text)


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The instructions, continuation lines joined and comment lines dropped (as Docker does),
    each with the index of its build stage (FROM starts the next)."""
    instructions: list[Instruction] = []
    pending = ""
    stage = -1
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), arguments.strip()))
    return instructions


def copy_sources(instruction: Instruction) -> list[str]:
    """The build-context paths a COPY reads (none for COPY --from, which reads a stage)."""
    words = [w for w in instruction.words() if not w.startswith("--chown")]
    if any(w.startswith("--from") for w in words):
        return []
    return [w for w in words if not w.startswith("--")][:-1]


def shell_commands(instruction: Instruction) -> Iterator[list[str]]:
    """The commands a RUN chains with `&&` or `;`, as word lists."""
    for part in re.split(r"&&|;", instruction.arguments):
        if part.strip():
            yield shlex.split(part)


# -- .dockerignore -----------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignore_excludes(path: str, patterns: Sequence[str]) -> bool:
    """Whether Docker leaves `path` (relative to the context) out of the build context: the last
    pattern matching the path or one of its parent folders decides, `!` lets it back in."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw[1:] if negated else raw
        pattern = pattern.strip().strip("/")
        if not pattern:
            continue
        regex = _pattern_regex(pattern)
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def ignore_patterns(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


# -- the repository ----------------------------------------------------------------------------


def code_location_name() -> str:
    """The code location's name, as the dg project declares it (pyproject.toml)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    name: str = pyproject["tool"]["dg"]["project"]["code_location_name"]
    return name


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# -- workloads: compose services, Kubernetes containers ---------------------------------------

CODE_SERVER = (("dagster", "api", "grpc"), ("dagster", "code-server", "start"))
WEBSERVER = (("dagster-webserver",),)
DAEMON = (("dagster-daemon", "run"),)
INSTANCE_INIT = (("python", "-c"),)
API = (("integration-platform", "api", "serve"),)
WORKERS = (("integration-platform", "workers"),)


@dataclass
class Workload:
    """One process a deployment file starts, as the checks need it."""

    name: str
    argv: list[str]
    # Values as the process sees them: ${VAR} and Secrets stand for PROVIDED.
    environment: dict[str, str]
    # Container path → the volume behind it (a compose volume, a PersistentVolumeClaim).
    mounts: dict[str, str] = field(default_factory=dict)
    # Container path → the repository's file mounted there.
    files: dict[str, Path] = field(default_factory=dict)
    # Container ports the file publishes, exposes or declares.
    ports: list[int] = field(default_factory=list)
    # Health checks: a command line, or the (port, path) of an HTTP check.
    exec_checks: list[list[str]] = field(default_factory=list)
    http_checks: list[tuple[int, str]] = field(default_factory=list)
    # Container path → the folder of the volume mounted there (a Kubernetes subPath).
    subpaths: dict[str, str] = field(default_factory=dict)
    # Variable → the (Secret, key) it comes from (Kubernetes); compose's come from its values.
    secret_refs: dict[str, tuple[str, str]] = field(default_factory=dict)
    # How many run at once, and whether an update starts the new one before the old one stops
    # (a Kubernetes Deployment's default RollingUpdate).
    replicas: int = 1
    overlapping_updates: bool = False

    def invocation(self) -> Invocation:
        return resolve(self.argv, self.files)

    def volume_at(self, path: PurePosixPath) -> tuple[str, PurePosixPath] | None:
        """The volume holding `path`, and the path's place inside it."""
        for target, volume in sorted(self.mounts.items(), key=lambda m: -len(m[0])):
            if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
                inside = PurePosixPath(self.subpaths.get(target, "")) / path.relative_to(target)
                return volume, inside
        return None

    def variable_source(self, name: str) -> tuple[str, ...]:
        """Where a variable's value comes from: its (Secret, key), or its value."""
        if name in self.secret_refs:
            return ("secret", *self.secret_refs[name])
        return ("value", self.environment.get(name, ""))


def _is_platform_service(service: Mapping[str, Any]) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("integration-platform")


def compose_workloads(compose: Mapping[str, Any]) -> list[Workload]:
    """The compose services that run the platform's image (postgres and redis run their own)."""
    workloads = []
    for name, service in compose["services"].items():
        if not _is_platform_service(service):
            continue
        raw_env = service.get("environment") or {}
        if isinstance(raw_env, list):
            raw_env = dict(item.split("=", 1) for item in raw_env)
        mounts, files = {}, {}
        for volume in service.get("volumes") or []:
            source, target = str(volume).split(":")[:2]
            if source.startswith("."):
                files[target] = ROOT / source
            else:
                mounts[target] = source
        ports = [int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports") or []]
        ports += [int(str(p).split("/")[0]) for p in service.get("expose") or []]
        workload = Workload(
            name,
            [str(word) for word in service["command"]],
            {key: interpolate(str(value)) for key, value in raw_env.items()},
            mounts,
            files,
            ports,
            replicas=int((service.get("deploy") or {}).get("replicas", 1)),
        )
        test = (service.get("healthcheck") or {}).get("test")
        if test:
            argv = [str(word) for word in test[1:]] if test[0] == "CMD" else ["sh", "-c", test[1]]
            http = http_check_url(argv)
            if http:
                workload.http_checks.append(http)
            else:
                workload.exec_checks.append(argv)
        workloads.append(workload)
    return workloads


def _kubernetes_env(entries: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {e["name"]: (str(e["value"]) if "value" in e else PROVIDED) for e in entries}


def _kubernetes_secret_refs(entries: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    refs = {}
    for entry in entries:
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            refs[entry["name"]] = (ref["name"], ref["key"])
    return refs


def _kubernetes_subpaths(mounts: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {m["mountPath"]: m["subPath"] for m in mounts if m.get("subPath")}


def _kubernetes_mounts(
    spec: Mapping[str, Any], mounts: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    found = {}
    for mount in mounts:
        volume = volumes.get(mount["name"], {})
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        found[mount["mountPath"]] = f"pvc:{claim}" if claim else f"volume:{mount['name']}"
    return found


def _probe_checks(workload: Workload, container: Mapping[str, Any]) -> None:
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(key) or {}
        if "httpGet" in probe:
            workload.http_checks.append((int(probe["httpGet"]["port"]), probe["httpGet"]["path"]))
        elif "exec" in probe:
            workload.exec_checks.append([str(w) for w in probe["exec"]["command"]])


def helm_workloads(values: Mapping[str, Any], manifests: Sequence[Any]) -> list[Workload]:
    """The processes the chart values (the code location) and the manifests beside them (the
    API, the pool Job) start with the platform's code. The webserver and daemon run the chart's
    own commands."""
    workloads = []
    home = (values.get("global") or {}).get("dagsterHome", HELM_DAGSTER_HOME)
    for deployment in values["dagster-user-deployments"]["deployments"]:
        port = int(deployment["port"])
        env = deployment.get("env") or []
        mounts = deployment.get("volumeMounts") or []
        workload = Workload(
            f"user deployment {deployment['name']}",
            [*HELM_GRPC_PREFIX, str(port), *deployment["dagsterApiGrpcArgs"]],
            # The chart sets DAGSTER_HOME itself (and mounts its dagster.yaml there).
            {"DAGSTER_HOME": home, **_kubernetes_env(env)},
            _kubernetes_mounts(deployment, mounts),
            ports=[port],
            # The chart's default probe (deployment-user.yaml), unless one is given.
            exec_checks=[["dagster", "api", "grpc-health-check", "-p", str(port)]],
            subpaths=_kubernetes_subpaths(mounts),
            secret_refs=_kubernetes_secret_refs(env),
            replicas=int(deployment.get("replicaCount", 1)),
        )
        workloads.append(workload)
    for document in manifests:
        if document["kind"] not in ("Deployment", "Job"):
            continue
        spec = document["spec"]["template"]["spec"]
        deployment = document["kind"] == "Deployment"
        strategy = (document["spec"].get("strategy") or {}).get("type", "RollingUpdate")
        for container in spec["containers"]:
            env = container.get("env") or []
            mounts = container.get("volumeMounts") or []
            workload = Workload(
                f"{document['kind']} {document['metadata']['name']}",
                [str(word) for word in container["command"] + (container.get("args") or [])],
                _kubernetes_env(env),
                _kubernetes_mounts(spec, mounts),
                ports=[int(p["containerPort"]) for p in container.get("ports") or []],
                subpaths=_kubernetes_subpaths(mounts),
                secret_refs=_kubernetes_secret_refs(env),
                replicas=int(document["spec"].get("replicas", 1)) if deployment else 1,
                overlapping_updates=deployment and strategy != "Recreate",
            )
            _probe_checks(workload, container)
            workloads.append(workload)
    return workloads


# -- checks ------------------------------------------------------------------------------------


def _role(invocation: Invocation, roles: tuple[tuple[str, ...], ...]) -> bool:
    return invocation.path in roles


def command_findings(workloads: Sequence[Workload]) -> list[str]:
    """Every command and health check resolves (executable, subcommands, options, modules), and
    each health check asks the port its process listens on."""
    findings = []
    for workload in workloads:
        try:
            invocation = workload.invocation()
        except CommandError as exc:
            findings.append(f"{workload.name}: {exc}")
            continue
        for argv in workload.exec_checks:
            try:
                check = resolve(argv)
            except CommandError as exc:
                findings.append(f"{workload.name}: health check: {exc}")
                continue
            if check.port is not None and check.port != invocation.port:
                findings.append(
                    f"{workload.name}: the health check asks port {check.port}, the process "
                    f"listens on {invocation.port}"
                )
        for port, path in workload.http_checks:
            if port != invocation.port:
                findings.append(
                    f"{workload.name}: the health check asks port {port}, the process listens "
                    f"on {invocation.port}"
                )
            if path not in served_paths(invocation):
                findings.append(f"{workload.name}: the health check asks {path}, not served")
    return findings


def served_paths(invocation: Invocation) -> set[str]:
    """The HTTP paths a server command serves that a health check may ask."""
    if _role(invocation, API):
        from integration_platform.api.routes.health import router

        return {route.path for route in router.routes if hasattr(route, "path")}
    if _role(invocation, WEBSERVER):
        import dagster_webserver.webserver as webserver

        return set(re.findall(r'Route\("(/[a-z_]+)"', inspect.getsource(webserver)))
    return set()


def port_findings(workloads: Sequence[Workload], exposed: set[int] | None = None) -> list[str]:
    """Every port a workload publishes or declares is the one its command listens on, and the
    image EXPOSEs it."""
    findings = []
    for workload in workloads:
        listening = workload.invocation().port
        for port in workload.ports:
            if port != listening:
                findings.append(
                    f"{workload.name}: publishes container port {port}, its command listens "
                    f"on {listening}"
                )
        if exposed is not None and listening is not None and listening not in exposed:
            findings.append(
                f"{workload.name}: listens on {listening}, which the image does not EXPOSE"
            )
    return findings


def environment_findings(
    workloads: Sequence[Workload],
    *,
    instance_from_environment: bool,
    chart_instance: Mapping[str, str | None] | None = None,
) -> list[str]:
    """The variables the code needs in each process, by what the process runs (derived from the
    code: dagster_variables, run_variables, api_variables), and where they lead: the warehouse
    and the published copy on one shared volume, the API's Dagster URL at the webserver.

    `instance_from_environment`: compose places the production profile's dagster.yaml, which
    reads its variables from each Dagster process's environment; Dagster's Helm chart writes
    its own dagster.yaml and sets what it reads in its own pods; `chart_instance`: what that
    dagster.yaml reads (chart_instance_variables), which workers outside the chart need."""
    findings = []
    invocations = {w.name: w.invocation() for w in workloads}
    by_role = {
        role: [w for w in workloads if _role(invocations[w.name], role)]
        for role in (CODE_SERVER, WEBSERVER, DAEMON, INSTANCE_INIT, API, WORKERS)
    }
    dagster_roles = (*CODE_SERVER, *WEBSERVER, *DAEMON, *INSTANCE_INIT)
    for workload in workloads:
        invocation = invocations[workload.name]
        needed: dict[str, str | None] = {}
        if instance_from_environment and invocation.path in (*dagster_roles, *WORKERS):
            needed.update(dagster_variables())
        if _role(invocation, WORKERS):
            needed.update(dict.fromkeys(worker_variables()))
            needed.update(chart_instance or {})
        if _role(invocation, CODE_SERVER):
            needed.update(dict.fromkeys(run_variables()))
        if _role(invocation, API):
            needed.update(dict.fromkeys(api_variables()))
        for name, value in needed.items():
            if name not in workload.environment:
                findings.append(f"{workload.name}: {name} is not set, and the code needs it")
            elif value is not None and workload.environment[name] != value:
                findings.append(
                    f"{workload.name}: {name} is {workload.environment[name]!r}, not {value!r}"
                )
        findings += _value_findings(workload, invocation, by_role)
    if by_role[WORKERS]:
        findings += worker_findings(by_role)
    return findings


def _value_findings(
    workload: Workload, invocation: Invocation, by_role: Mapping[Any, list[Workload]]
) -> list[str]:
    from integration_platform.orchestration import instance

    findings = []
    url = workload.environment.get(instance.POSTGRES_URL_VARIABLE)
    if url not in (None, PROVIDED) and not url.startswith(instance.POSTGRES_URL_SCHEME):
        findings.append(
            f"{workload.name}: {instance.POSTGRES_URL_VARIABLE} must start with "
            f"{instance.POSTGRES_URL_SCHEME}"
        )
    if _role(invocation, CODE_SERVER) or _role(invocation, WORKERS):
        warehouse = warehouse_path(workload.environment)
        if workload.volume_at(warehouse) is None:
            findings.append(
                f"{workload.name}: the warehouse ({warehouse}) is on no volume: set "
                "INTEGRATION_PLATFORM_DATA_DIR (or WAREHOUSE_PATH) to a mounted folder"
            )
    if _role(invocation, API):
        findings += _api_findings(workload, by_role)
    return findings


def _api_findings(workload: Workload, by_role: Mapping[Any, list[Workload]]) -> list[str]:
    from integration_platform.clients.database import DATABASE_URL_VARIABLE
    from integration_platform.environment import SettingError
    from integration_platform.orchestration.dagster_graphql import WEBSERVER_URL_VARIABLE

    findings = []
    try:
        settings = api_settings(workload.environment)
    except SettingError as refused:  # the API would not start: what it says
        return [f"{workload.name}: {refused}"]
    if settings.database_url.startswith("sqlite"):
        findings.append(
            f"{workload.name}: the client store would be SQLite inside the container: set "
            f"{DATABASE_URL_VARIABLE}"
        )
    if settings.dagster_storage_url is None:
        findings.append(
            f"{workload.name}: the API runs in the local instance profile, so /health/ready would "
            "not ask Dagster's storage: set INTEGRATION_PLATFORM_PROFILE=production and "
            "DAGSTER_POSTGRES_URL"
        )
    dagster = urlsplit(settings.dagster_url)
    webservers = by_role[WEBSERVER]
    if webservers and not any(
        dagster.hostname == w.name and dagster.port == w.invocation().port for w in webservers
    ):
        findings.append(
            f"{workload.name}: {WEBSERVER_URL_VARIABLE} leads to {settings.dagster_url}, not to "
            f"the webserver ({', '.join(f'{w.name}:{w.invocation().port}' for w in webservers)})"
        )
    # The copy is published beside the warehouse: the same folder of the same volume.
    published = workload.volume_at(settings.published_warehouse)
    writers = [*by_role[CODE_SERVER], *by_role[WORKERS]]
    written = {w.volume_at(warehouse_path(w.environment)) for w in writers}
    beside = {(v[0], v[1].parent) for v in written if v}
    if published is None or (beside and (published[0], published[1].parent) not in beside):
        findings.append(
            f"{workload.name}: the published copy ({settings.published_warehouse}) is not on "
            "the volume the code server's runs write the warehouse to: set "
            "INTEGRATION_PLATFORM_DATA_DIR to the shared volume"
        )
    return findings


def worker_findings(by_role: Mapping[Any, list[Workload]]) -> list[str]:
    """With celery workers: the code server (whose runs send the steps) and the API (whose
    readiness asks the broker) name the workers' broker, from the same place; every queue the
    runs use has a worker, the warehouse queue exactly one that never overlaps its successor
    (DuckDB has one writer); and the landing zone, the warehouse and the runs' step outputs are
    the same shared folders in every process that writes or reads them."""
    from integration_platform.celery_workers import BROKER_URL_VARIABLE, QUEUES, WAREHOUSE_QUEUE

    workers, code_servers = by_role[WORKERS], by_role[CODE_SERVER]
    findings = []
    brokers = {w.variable_source(BROKER_URL_VARIABLE) for w in workers}
    for workload in [*code_servers, *by_role[API]]:
        if BROKER_URL_VARIABLE not in workload.environment:
            findings.append(
                f"{workload.name}: {BROKER_URL_VARIABLE} is not set, and the workers need it "
                "(without it, runs never send their steps to them)"
                if workload in code_servers
                else f"{workload.name}: {BROKER_URL_VARIABLE} is not set, so /health/ready would "
                "not ask the workers' broker"
            )
        elif workload.variable_source(BROKER_URL_VARIABLE) not in brokers:
            findings.append(f"{workload.name}: {BROKER_URL_VARIABLE} is not the workers' broker")
    served: dict[str, list[Workload]] = {queue: [] for queue in QUEUES}
    for worker in workers:
        for queue in worker.invocation().params["queues"]:
            served[queue].append(worker)
    for queue, serving in served.items():
        if not serving:
            findings.append(f"no worker takes the {queue!r} queue: its steps would wait forever")
    writers = served[WAREHOUSE_QUEUE]
    if sum(w.replicas for w in writers) > 1:
        findings.append(
            f"{', '.join(w.name for w in writers)}: more than one process takes the "
            f"{WAREHOUSE_QUEUE!r} queue; DuckDB has one writer"
        )
    findings += [
        f"{w.name}: an update starts the new {WAREHOUSE_QUEUE!r} worker before the old one "
        "stops (set strategy Recreate); DuckDB has one writer"
        for w in writers
        if w.overlapping_updates
    ]
    findings += _shared_folder_findings(
        "the landing zone",
        [(w, landing_path(w.environment)) for w in [*code_servers, *workers]],
    )
    for path in {p for p in map(step_storage, code_servers) if p is not None}:
        findings += _shared_folder_findings("the runs' step outputs", [(w, path) for w in workers])
    return findings


def _shared_folder_findings(
    what: str, placed: Sequence[tuple[Workload, PurePosixPath | str]]
) -> list[str]:
    """Each workload has `what` (its path there, or an object-storage URL, which every process
    reaches) on a volume, and all of them the same folder of the same volume, or the same URL."""
    findings: list[str] = []
    places: set[tuple[str, PurePosixPath | str]] = set()
    for workload, path in placed:
        if isinstance(path, str):
            places.add(("object storage", path))
            continue
        place = workload.volume_at(path)
        if place is None:
            findings.append(
                f"{workload.name}: {what} ({path}) is on no volume the other processes share"
            )
        else:
            places.add(place)
    if len(places) > 1:
        findings.append(
            f"{what} is not one shared place: "
            + ", ".join(f"{volume}:{inside}" for volume, inside in sorted(places, key=str))
        )
    return findings


def compose_secret_findings(compose: Mapping[str, Any]) -> list[str]:
    """Secrets in compose are ${VAR} references (the host's environment or .env), never values."""
    findings = []
    for name, service in compose["services"].items():
        raw_env = service.get("environment") or {}
        if isinstance(raw_env, list):
            raw_env = dict(item.split("=", 1) for item in raw_env)
        for key, value in raw_env.items():
            findings += secret_findings(name, key, str(value), reference_ok=True)
    return findings


def kubernetes_secret_findings(where: str, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Secrets in Kubernetes come from a Secret (valueFrom), never from a written value."""
    findings = []
    for entry in entries:
        if "value" in entry:
            findings += secret_findings(
                where, entry["name"], str(entry["value"]), reference_ok=False
            )
    return findings


def chart_instance_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """The dagster.yaml Dagster's chart writes from these values, for the parts they set
    (templates/configmap-instance.yaml and helpers/instance/*.tpl of the chart)."""
    postgresql = values["postgresql"]
    storage_config = {
        "postgres_db": {
            "username": postgresql["postgresqlUsername"],
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": postgresql["postgresqlHost"],
            "db_name": postgresql["postgresqlDatabase"],
            "port": postgresql["service"]["port"],
        }
    }

    def storage(kind: str, cls: str) -> dict[str, Any]:
        return {"module": f"dagster_postgres.{kind}", "class": cls, "config": storage_config}

    daemon = values["dagsterDaemon"]
    runs, pools = values["concurrency"]["runs"], values["concurrency"]["pools"]
    return {
        "run_storage": storage("run_storage", "PostgresRunStorage"),
        "event_log_storage": storage("event_log", "PostgresEventLogStorage"),
        "schedule_storage": storage("schedule_storage", "PostgresScheduleStorage"),
        "run_launcher": values["runLauncher"]["config"]["customRunLauncher"],
        "run_coordinator": daemon["runCoordinator"]["config"]["customRunCoordinator"],
        "compute_logs": values["computeLogManager"]["config"]["customComputeLogManager"],
        "concurrency": {
            "runs": {
                "max_concurrent_runs": runs["maxConcurrentRuns"],
                "tag_concurrency_limits": runs["tagConcurrencyLimits"],
            },
            "pools": {"default_limit": pools["defaultLimit"], "granularity": pools["granularity"]},
        },
        "run_retries": {
            "enabled": daemon["runRetries"]["enabled"],
            "max_retries": daemon["runRetries"]["maxRetries"],
        },
        "telemetry": values["telemetry"],
        **values.get("additionalInstanceConfig", {}),
    }
