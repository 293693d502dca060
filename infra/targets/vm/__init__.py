"""The vm target: a state data centre's VMs, converged by Ansible (``playbooks/site.yml``).

``render`` writes, besides the inputs every production target shares (portal settings with
secrets as references, logos, the theme JAR, ``keycloak.conf``):

- ``inventory/hosts.yml``: one host for everything, or the database on a host of its own
  (written the first time only: the operator may add SSH users, ports, more hosts);
- ``inventory/group_vars/all/site.yml``: the operator's choices (apt sources, wheelhouse,
  certificates, backups), written the first time only;
- ``inventory/group_vars/all/rendered.yml``: every role's variables from the specs, with a
  comment above each saying where it came from; secrets only as ``{{ vault_… }}`` names;
- ``inventory/group_vars/all/vault.yml``: the secrets' values, an Ansible Vault file encrypted
  with the operator's vault password file; missing secrets are generated once, kept after;
- ``specs/``: the specs and logos the realm step applies on the host;
- ``dist/``: the kit's wheel the portal role installs.

``deploy`` renders and runs ``ansible-playbook`` with the operator's vault password file,
printing the play's own lines as it goes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from identity.vault import vault_file_name
from infra.bundle import source_build_lock, source_root
from infra.errors import KitError
from infra.home import KitHome
from infra.keycloak.release import KEYCLOAK_SHA256, KEYCLOAK_VERSION, archive_path
from infra.render.tenant import RenderedTenant, secret_references
from infra.spec import TenantSpec
from infra.spec.model import DEPLOYMENT_FILES
from infra.targets.base import Artefact, Manifest, Progress
from infra.targets.production import (
    KEYCLOAK_BOOTSTRAP_SECRET,
    KEYCLOAK_DB_PASSWORD,
    KeycloakSite,
    ProductionTarget,
)
from infra.targets.trust import provider_cas

DATA_ROOT = "/var/lib/karmayogi"
# Where gunicorn of the n-th tenant (in code order) listens on the host.
FIRST_PORTAL_PORT = 8101
DATABASE_PASSWORD = "database_password"
# Environment the entry point passes down (the CLI sets them from its options).
VAULT_PASSWORD_FILE = "ANSIBLE_VAULT_PASSWORD_FILE"
HOST = "KARMAYOGI_VM_HOST"
DATABASE_HOST = "KARMAYOGI_VM_DATABASE_HOST"
WHEELHOUSE = "KARMAYOGI_WHEELHOUSE_URL"
APT_MIRROR = "KARMAYOGI_APT_MIRROR"
KIT_WHEEL = "KARMAYOGI_KIT_WHEEL"
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "-q")
RENDER_DIR = "KARMAYOGI_RENDER_DIR"
VAULT_FILE = "inventory/group_vars/all/vault.yml"
_VAULT_VAR = re.compile(r"^ansible-vault:(vault_[a-z0-9_]+)$")
# Keycloak's file vault on the host: the state's secrets as <realm>_<name> files.
KEYCLOAK_VAULT_DIR = "/opt/keycloak/vault"
# The providers' CAs on the host, one <code>.pem per tenant, read by Keycloak when it starts.
KEYCLOAK_TRUSTSTORE_DIR = "/opt/keycloak/truststore"
TRUSTSTORE_OUT = "keycloak/truststore"


def vault_variable(code: str, name: str) -> str:
    return f"vault_karmayogi_{code.replace('-', '_')}_{name}"


def state_secret_variable(code: str, name: str) -> str:
    """The vault variable of a secret the state gave (``{secret: name}`` in its spec); the
    ``state_`` prefix keeps it apart from the kit's own (``portal_client_secret`` …)."""
    return vault_variable(code, f"state_{name.replace('-', '_')}")


def database_name(code: str) -> str:
    return f"portal_{code.replace('-', '_')}"


class VmTarget(ProductionTarget):
    def __init__(self, env: dict[str, str]) -> None:
        database_host = env.get(DATABASE_HOST) or "localhost"
        super().__init__(
            "vm",
            DATA_ROOT,
            "ansible-playbook playbooks/site.yml",
            env,
            KeycloakSite(
                database_host=database_host,
                vault_dir=KEYCLOAK_VAULT_DIR,
                truststore_paths=(KEYCLOAK_TRUSTSTORE_DIR,),
            ),
        )

    def reference_of(self, code: str, name: str) -> str:
        return f"ansible-vault:{vault_variable(code, name)}"

    # --- render ------------------------------------------------------------------------------

    def render(self, specs: Sequence[TenantSpec], codes: Sequence[str], out: Path) -> Manifest:
        password_file = self._password_file()
        # The state's secrets are checked before anything is written.
        given = _state_secrets([s for s in specs if s.code in codes], self.env)
        _check_state_secrets(given, read_vault(out / VAULT_FILE, password_file))
        cas = provider_cas([s for s in specs if s.code in codes])
        manifest, rendered = self.render_common(specs, codes, out)
        deployment = rendered[0].spec.deployment_name
        for written in _write_truststore(cas, out / TRUSTSTORE_OUT):
            _record(manifest, out, written, "a tenant's providers' CAs, for Keycloak's truststore")
        for copied in _copy_specs(specs, out / "specs"):
            _record(manifest, out, copied, "a spec or logo the realm step applies on the host")
        wheel = self._kit_wheel(out / "dist")
        _record(manifest, out, wheel, "the kit's wheel the portal role installs")
        vault_names = [m.group(1) for s in manifest.secrets if (m := _VAULT_VAR.match(s.reference))]
        vault_names += [vault_variable(r.code, DATABASE_PASSWORD) for r in rendered]
        vault = out / VAULT_FILE
        _ensure_vault(vault, password_file, vault_names, rendered, given)
        _record(manifest, out, vault, "the secrets' values, encrypted (Ansible Vault)")
        hosts = ("inventory/hosts.yml", "the hosts; yours to edit")
        site = (
            "inventory/group_vars/all/site.yml",
            "the operator's choices: apt sources, wheelhouse, certificates, backups",
        )
        for relative, purpose in (hosts, site):
            if (out / relative).exists():
                _record(manifest, out, out / relative, purpose)
            else:
                text = self._hosts(out) if relative == hosts[0] else _site_vars(self.env)
                manifest.write_file(out, relative, text, purpose)
        manifest.write_file(
            out,
            "inventory/group_vars/all/rendered.yml",
            _rendered_vars(rendered, deployment, wheel, self._keycloak_archive(), self.env),
            "every role's variables from the specs; secrets named, never given",
        )
        manifest.save(out)
        return manifest

    def _password_file(self) -> Path:
        given = self.env.get(VAULT_PASSWORD_FILE)
        if not given:
            raise KitError(
                "the vm target keeps secrets in an Ansible Vault: give --vault-password-file "
                "FILE (a file holding the vault's password, kept out of git)"
            )
        path = Path(given)
        if not path.is_file():
            raise KitError(f"--vault-password-file: {path} is not a file")
        return path.resolve()

    def _keycloak_archive(self) -> Path:
        cache = Path(self.env.get("KARMAYOGI_CACHE") or Path.home() / ".cache" / "karmayogi")
        return archive_path(cache).resolve()

    def _kit_wheel(self, dist: Path) -> Path:
        given = self.env.get(KIT_WHEEL)
        dist.mkdir(parents=True, exist_ok=True)
        if given:
            source = Path(given)
            if not source.is_file():
                raise KitError(f"{KIT_WHEEL}: {source} is not a file")
            target = dist / source.name
            if source.resolve() != target.resolve():
                shutil.copyfile(source, target)
            return target.resolve()
        root = source_root()
        if not (root / "pyproject.toml").is_file():
            raise KitError(
                f"cannot build the kit's wheel: no source tree at {root}; set {KIT_WHEEL} "
                "to the kit's wheel"
            )
        with source_build_lock(root):
            for old in dist.glob("karmayogi_kit-*.whl"):
                old.unlink()
            # setuptools packs whatever an earlier build left in build/lib, deleted files too.
            shutil.rmtree(root / "build", ignore_errors=True)
            compiled = subprocess.run(
                [str(root / "scripts" / "compile-translations.sh")],
                capture_output=True,
                text=True,
                check=False,
            )
            if compiled.returncode != 0:
                last = (compiled.stderr.strip().splitlines() or ["no output"])[-1]
                raise KitError(f"compiling the portal's translations for its wheel failed: {last}")
            done = subprocess.run(
                [*PIP_WHEEL, "--wheel-dir", str(dist), str(root)],
                capture_output=True,
                text=True,
                check=False,
            )
        built = sorted(dist.glob("karmayogi_kit-*.whl"))
        if done.returncode != 0 or not built:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise KitError(f"building the kit's wheel failed: {last}")
        return built[-1].resolve()

    def _hosts(self, out: Path) -> str:
        host = self.env.get(HOST)
        if not host:
            raise KitError(
                f"the first render into {out} needs --host ADDRESS (the VM that runs the "
                "deployment; --database-host ADDRESS puts PostgreSQL on a host of its own)"
            )
        database = self.env.get(DATABASE_HOST)
        lines = [
            "# Rendered once by `karmayogi render --target vm`; yours to edit (SSH user,",
            "# port, key): later renders keep this file.",
            "karmayogi_app:",
            "  hosts:",
            f"    {host}:",
            "karmayogi_database:",
            "  hosts:",
            f"    {database or host}:",
        ]
        return "\n".join(lines) + "\n"

    # --- deploy ------------------------------------------------------------------------------

    def deploy(self, specs: Sequence[TenantSpec], codes: Sequence[str], progress: Progress) -> Any:
        password_file = self._password_file()
        out = Path(self.env.get(RENDER_DIR) or Path("rendered") / codes[0])
        playbook = source_root() / "playbooks" / "site.yml"
        if not playbook.is_file():
            raise KitError(f"the playbooks are not at {playbook}: deploy from the kit's source")
        from infra.keycloak.release import fetch_archive

        archive = self._keycloak_archive()
        progress(f"Keycloak {KEYCLOAK_VERSION}: {archive}")
        fetch_archive(
            archive,
            mvn=shutil.which("mvn"),
            repository_url=self.env.get("KARMAYOGI_MAVEN_REPOSITORY"),
        )
        progress(f"rendering into {out}")
        self.render(specs, codes, out)
        command = playbook_command(out, password_file)
        progress(" ".join(command))
        for line in run_streaming(command, ansible_env(self.env, out)):
            progress(line)
        return out

    # --- status and logs ----------------------------------------------------------------------

    def status(self, specs: Sequence[TenantSpec]) -> dict[str, Any]:
        """Each app host's services, portals, timers and last runs, read on the host
        (``infra.targets.vm.hoststatus``) through Ansible with the inventory's connection."""
        probe = "{{ portal_root | default('/opt/karmayogi') }}/current/bin/python"
        hosts = []
        for name, result in self._on_app_hosts(
            self._render_dir(specs), f"{probe} -m infra.targets.vm.hoststatus"
        ):
            if result.get("rc") == 0:
                hosts.append({"address": name} | json.loads(result["stdout"]))
            else:
                hosts.append({"address": name, "healthy": False, "error": _reason(result)})
        return {"target": "vm", "healthy": all(h["healthy"] for h in hosts), "hosts": hosts}

    def logs(self, name: str) -> Path:
        """The journal of a component on every app host, written to ``<render>/logs/<name>.log``:
        a tenant's code (its portal, syncer and xAPI delivery), ``keycloak``, ``nginx``,
        ``federation`` (every syncer) or ``backup``."""
        given = self.env.get(RENDER_DIR)
        if not given:
            raise KitError("vm logs are read through the inventory: name the render with --out")
        units = _LOG_UNITS.get(name)
        if units is None:
            if not re.fullmatch(r"[a-z][a-z0-9-]{1,62}", name):
                raise KitError(
                    f"{name!r} is not a tenant code, keycloak, nginx, federation or backup"
                )
            units = [f"{unit}@{name}.service" for unit in _TENANT_UNITS]
        out = Path(given)
        command = "journalctl --no-pager --output=short-iso -n 1000 " + " ".join(
            f"-u {unit}" for unit in units
        )
        parts = []
        for host, result in self._on_app_hosts(out, command):
            text = result.get("stdout") if result.get("rc") == 0 else f"({_reason(result)})"
            parts.append(f"== {host} ==\n{text}\n")
        path = out / "logs" / f"{name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(parts), encoding="utf-8")
        return path

    def _on_app_hosts(self, out: Path, command: str) -> list[tuple[str, dict[str, Any]]]:
        """Run ``command`` as root on every app host (Ansible ad hoc, the inventory's own
        connection settings); each host's result, by name."""
        password_file = self._password_file()
        inventory = out / "inventory"
        if not inventory.is_dir():
            raise KitError(f"{inventory}: no inventory here; render or deploy with --out {out}")
        argv = [_ansible_tool("ansible"), "karmayogi_app", "-i", str(inventory)]
        argv += ["--vault-password-file", str(password_file), "--become"]
        argv += ["-m", "ansible.builtin.command", "-a", command]
        env = ansible_env(self.env, out) | {
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        }
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        try:
            report = json.loads(done.stdout)
        except json.JSONDecodeError:
            said = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise KitError(f"ansible could not reach the app hosts: {said}") from None
        return sorted(report["plays"][0]["tasks"][0]["hosts"].items())

    def _render_dir(self, specs: Sequence[TenantSpec]) -> Path:
        given = self.env.get(RENDER_DIR)
        if given:
            return Path(given)
        first = next((s.code for s in specs if s.spec.deployment.target == self.name), None)
        if first is None:
            raise KitError("no tenant in the folder deploys to vm; name the render with --out")
        return Path("rendered") / first


# Components whose journal `karmayogi logs NAME --target vm` reads (a tenant's code reads its
# portal, syncer and xAPI delivery).
_LOG_UNITS = {
    "keycloak": ["keycloak.service"],
    "nginx": ["nginx.service"],
    "federation": ["karmayogi-sync@*.service"],
    "backup": ["karmayogi-backup.service"],
}
_TENANT_UNITS = ("karmayogi-portal", "karmayogi-sync", "karmayogi-xapi")


def _reason(result: Mapping[str, Any]) -> str:
    """Why an ad hoc command failed on a host, in one line (its end)."""
    said = result.get("msg") or result.get("stderr") or "no answer"
    return " ".join(str(said).split())[-300:]


def ansible_env(env: Mapping[str, str], out: Path) -> dict[str, str]:
    """The environment of ``ansible-playbook``: the caller's, with the kit's defaults."""
    return {
        **env,
        "ANSIBLE_CONFIG": str(source_root() / "playbooks" / "ansible.cfg"),
        "ANSIBLE_FORCE_COLOR": env.get("ANSIBLE_FORCE_COLOR", "0"),
    }


def playbook_command(out: Path, password_file: Path) -> list[str]:
    return [
        _ansible_tool("ansible-playbook"),
        "-i",
        str(out / "inventory"),
        "--vault-password-file",
        str(password_file),
        str(source_root() / "playbooks" / "site.yml"),
    ]


def _ansible_tool(name: str) -> str:
    tool = Path(sys.executable).with_name(name)
    return str(tool) if tool.exists() else name


def run_streaming(command: Sequence[str], env: Mapping[str, str]) -> Iterator[str]:
    """Run ``command``, yielding its output line by line; a failure is one line naming it."""
    try:
        process = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(env),
        )
    except FileNotFoundError:
        raise KitError(f"{command[0]} is not installed (pip install 'ansible==12.*')") from None
    assert process.stdout is not None
    tail: list[str] = []
    for line in process.stdout:
        line = line.rstrip("\n")
        tail = [*tail[-60:], line]
        yield line
    if process.wait() != 0:
        said = [t.strip() for t in tail if t.strip().startswith(("[ERROR]", "fatal:", "msg:"))]
        reason = " ".join(said[-2:]) or "see the play's output above"
        raise KitError(f"ansible-playbook failed (exit {process.returncode}): {reason}")


# --- files -----------------------------------------------------------------------------------


def _record(manifest: Manifest, out: Path, path: Path, purpose: str) -> None:
    """List a file written other than by ``manifest.write_file``."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest.files.append(Artefact(str(path.resolve().relative_to(out.resolve())), purpose, digest))


def _write_truststore(cas: Mapping[str, bytes], folder: Path) -> list[Path]:
    """Each tenant's providers' CAs as ``<code>.pem`` (none for a tenant without any)."""
    if folder.exists():
        shutil.rmtree(folder)
    written = []
    for code, bundle in sorted(cas.items()):
        if bundle:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{code}.pem").write_bytes(bundle)
            written.append(folder / f"{code}.pem")
    return written


def _copy_specs(specs: Sequence[TenantSpec], folder: Path) -> list[Path]:
    """The specs and their logos, as the realm step on the host loads them."""
    if folder.exists():
        shutil.rmtree(folder)
    copied: list[Path] = []
    for spec in specs:
        logo = Path(spec.spec.branding.logo)
        if logo.is_absolute() or ".." in logo.parts:
            raise KitError(
                f"{spec.source}: spec.branding.logo {logo} must lie beside the spec to be "
                "copied to the host"
            )
        (folder / logo).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(spec.source, folder / spec.source.name)
        shutil.copyfile(spec.logo_path, folder / logo)
        copied += [folder / spec.source.name, folder / logo]
        # The deployment's defaults beside the specs (a mail server) go with them.
        for name in DEPLOYMENT_FILES:
            if (spec.source.parent / name).is_file():
                shutil.copyfile(spec.source.parent / name, folder / name)
                copied.append(folder / name)
    return sorted(set(copied))


@dataclass(frozen=True)
class StateSecret:
    """A secret the state's spec names, where it is named and, when the store on this
    machine holds it, its value (never printed)."""

    code: str
    name: str
    where: str  # the spec file and field, for messages
    value: str | None = field(default=None, repr=False)

    @property
    def variable(self) -> str:
        return state_secret_variable(self.code, self.name)

    @property
    def file(self) -> str:
        """The file Keycloak's vault reads for ``${vault.<name>}`` in the tenant's realm."""
        return vault_file_name(self.code, self.name)


def _state_secrets(specs: Sequence[TenantSpec], env: Mapping[str, str]) -> list[StateSecret]:
    """The secrets each tenant's spec names (providers, mail), valued from the same store
    the local target reads: the kit home's, where `karmayogi identity secret` keeps them."""
    from infra.targets.local.render import LocalSecretStore

    store = LocalSecretStore(KitHome.from_env(dict(env)))
    found: dict[tuple[str, str], StateSecret] = {}
    for spec in sorted(specs, key=lambda s: s.code):
        stored = store.stored(spec.code)
        for file, named_at, ref in secret_references(spec):
            key = (spec.code, ref.secret)
            if key not in found:
                where = f"{file}: {named_at}"
                found[key] = StateSecret(spec.code, ref.secret, where, stored.get(ref.secret))
    return list(found.values())


def _yaml_doc(entries: Sequence[tuple[str, str, Any]]) -> str:
    """A YAML mapping with a comment above each top-level key."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.allow_unicode = True
    lines = ["---", "# Rendered by `karmayogi render --target vm`; edits are overwritten."]
    for key, note, value in entries:
        buffer = io.StringIO()
        yaml.dump({key: value}, buffer)
        lines += ["", *[f"# {part}" for part in note.splitlines()], buffer.getvalue().rstrip()]
    return "\n".join(lines) + "\n"


def _jinja(name: str) -> str:
    return "{{ " + name + " }}"


def split_secrets(code: str, settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A portal's settings without secrets, and each secret setting by its name in the
    contract (read on the host from ``<NAME>_FILE``), as the vault variable holding it."""
    plain: dict[str, Any] = {}
    secret: dict[str, str] = {}

    def vault_of(value: Any) -> str | None:
        if isinstance(value, dict) and set(value) == {"secretRef"}:
            match = _VAULT_VAR.match(value["secretRef"])
            if match is None:
                raise KitError(f"{code}: secret {value['secretRef']} is not a vault variable")
            return _jinja(match.group(1))
        return None

    for key, value in settings.items():
        ref = vault_of(value)
        if ref is not None:
            secret[key] = ref
        elif key == "KARMAYOGI_FEDERATION" and isinstance(value, dict):
            federation = dict(value)
            ref = vault_of(federation.pop("clientSecret", None))
            if ref is not None:
                secret["KARMAYOGI_FEDERATION_CLIENT_SECRET"] = ref
            plain[key] = federation
        else:
            plain[key] = value
    leftover = "secretRef" in repr(plain)
    if leftover:
        raise KitError(f"{code}: a secret nested in the settings cannot be given as a file")
    return plain, secret


def _rendered_vars(
    rendered: Sequence[RenderedTenant],
    deployment: str,
    wheel: Path,
    keycloak_archive: Path,
    env: Mapping[str, str],
) -> str:
    from infra.render.tenant import references

    ordered = sorted(rendered, key=lambda r: r.code)
    first = ordered[0]
    render_dir = "{{ inventory_dir }}/.."
    wheel_sha = content_digest(wheel)
    portals: list[dict[str, Any]] = []
    for index, tenant in enumerate(ordered):
        settings, secret = split_secrets(tenant.code, references(tenant.portal))
        runtime_logo = str(settings["KARMAYOGI_LOGO"])
        portals.append(
            {
                "code": tenant.code,
                "port": FIRST_PORTAL_PORT + index,
                "domain": tenant.spec.spec.domain,
                "data_dir": str(settings["KARMAYOGI_DATA_DIR"]),
                "logo": f"{render_dir}/portal/{tenant.code}/{Path(runtime_logo).name}",
                "logo_dest": runtime_logo,
                "settings": settings,
                "secrets": secret,
            }
        )
    database_host = env.get(DATABASE_HOST) or "localhost"
    databases = [
        {
            "name": "keycloak",
            "owner": "keycloak",
            "password": _jinja(vault_variable(deployment, KEYCLOAK_DB_PASSWORD)),
        }
    ] + [
        {
            "name": database_name(t.code),
            "owner": database_name(t.code),
            "password": _jinja(vault_variable(t.code, DATABASE_PASSWORD)),
        }
        for t in ordered
    ]
    secrets_by_tenant = {
        t.code: {
            name: _jinja(vault_variable(t.code, name))
            for name in (
                "portal_client_secret",
                "broker_client_secret",
                "federation_client_secret",
            )
        }
        for t in ordered
    }
    separate = bool(env.get(DATABASE_HOST)) and env.get(DATABASE_HOST) != env.get(HOST)
    entries: list[tuple[str, str, Any]] = [
        (
            "ansible_python_interpreter",
            "the kit: never a discovered interpreter",
            "/usr/bin/python3",
        ),
        ("karmayogi_deployment", f"spec deployment.name of {first.code}", deployment),
        (
            "karmayogi_specs_dir",
            "the specs and logos copied beside the inventory",
            f"{render_dir}/specs",
        ),
        (
            "karmayogi_database_host",
            "--database-host (default: the app host itself)",
            database_host,
        ),
        (
            "common_database_clients",
            "the app host may reach PostgreSQL when it has a host of its own",
            [env[HOST]] if separate and env.get(HOST) else [],
        ),
        (
            "postgresql_listen_addresses",
            "loopback, and every address when the database has a host of its own",
            ["localhost", "*"] if separate else ["localhost"],
        ),
        (
            "postgresql_client_networks",
            "the app host, when the database has a host of its own",
            [f"{env[HOST]}/32"] if separate and env.get(HOST) else [],
        ),
        ("postgresql_databases", "Keycloak's database, and each portal's", databases),
        (
            "keycloak_version",
            "the kit's pinned release (infra/keycloak/release.py)",
            KEYCLOAK_VERSION,
        ),
        ("keycloak_archive_sha256", "the kit's pinned checksum", KEYCLOAK_SHA256),
        ("keycloak_archive", "the kit's cache on the controller", str(keycloak_archive)),
        (
            "keycloak_conf_file",
            "rendered from the specs",
            f"{render_dir}/keycloak/conf/keycloak.conf",
        ),
        (
            "keycloak_themes_jar",
            "every tenant's login theme",
            f"{render_dir}/keycloak/providers/karmayogi-themes.jar",
        ),
        (
            "keycloak_heap",
            "deployment.size: the largest in the deployment",
            first.size.keycloak_heap,
        ),
        ("keycloak_db_password", "vault", _jinja(vault_variable(deployment, KEYCLOAK_DB_PASSWORD))),
        (
            "keycloak_truststore_dir",
            "the kit: the providers' CAs (truststore-paths in keycloak.conf)",
            KEYCLOAK_TRUSTSTORE_DIR,
        ),
        (
            "keycloak_truststore_files",
            "spec identity.providers[].ca of each tenant, rendered beside the inventory",
            [
                {"name": f"{t.code}.pem", "src": f"{render_dir}/{TRUSTSTORE_OUT}/{t.code}.pem"}
                for t in ordered
                if provider_cas([t.spec])[t.code]
            ],
        ),
        (
            "keycloak_vault_dir",
            "the kit: Keycloak's file vault (vault-dir in keycloak.conf)",
            KEYCLOAK_VAULT_DIR,
        ),
        (
            "keycloak_vault_secrets",
            "the secrets the specs name as {secret: …} (providers, mail): one file each,\n"
            "<realm>_<name>, its value from the vault",
            [
                {"file": secret.file, "value": _jinja(secret.variable)}
                for secret in _state_secrets([r.spec for r in rendered], env)
            ],
        ),
        (
            "keycloak_bootstrap_client_secret",
            "vault",
            _jinja(vault_variable(deployment, KEYCLOAK_BOOTSTRAP_SECRET)),
        ),
        (
            "portal_release_id",
            "the kit's version and a digest of its wheel's files",
            f"{_version(wheel)}-{wheel_sha[:12]}",
        ),
        (
            "portal_kit_wheel",
            "built from the kit's source by render",
            f"{render_dir}/dist/{wheel.name}",
        ),
        (
            "portal_tenants",
            "each tenant's rendered settings (portal-settings.schema.json)",
            portals,
        ),
        (
            "nginx_portals",
            "spec.domain of each tenant",
            [{"domain": p["domain"], "port": p["port"]} for p in portals],
        ),
        ("nginx_keycloak_domain", "spec identity.loginDomain", first.spec.login_domain),
        (
            "backup_source",
            "what `karmayogi backup` reads (docs/backup.md): the databases and media",
            {
                "deployment": deployment,
                "keycloak": {
                    "database_url": "postgresql://keycloak:{{ "
                    + vault_variable(deployment, KEYCLOAK_DB_PASSWORD)
                    + f" | urlencode }}}}@{database_host}:5432/keycloak"
                },
                "portals": {
                    p["code"]: {
                        "database_url": p["secrets"]["DATABASE_URL"],
                        "media_root": p["settings"]["KARMAYOGI_MEDIA_ROOT"],
                    }
                    for p in portals
                },
            },
        ),
        (
            "karmayogi_realms_input",
            "the realm step's input, written 0600 on the host",
            {
                "specs": "/etc/karmayogi/specs",
                "codes": [t.code for t in ordered],
                "data_root": DATA_ROOT,
                "keycloak_url": "http://127.0.0.1:{{ keycloak_http_port | default(8080) }}",
                "bootstrap_client_id": _jinja(
                    "keycloak_bootstrap_client_id | default('karmayogi-bootstrap')"
                ),
                "bootstrap_client_secret": "{{ keycloak_bootstrap_client_secret }}",
                "accounts_file": "/etc/karmayogi/keycloak-accounts.json",
                "secrets": secrets_by_tenant,
            },
        ),
    ]
    return _yaml_doc(entries)


def content_digest(wheel: Path) -> str:
    """SHA-256 of a wheel's RECORD (every file's name and SHA-256): the same code built again,
    with other timestamps in the zip, gives the same digest, so the same release."""
    with zipfile.ZipFile(wheel) as archive:
        record = next((n for n in archive.namelist() if n.endswith(".dist-info/RECORD")), None)
        if record is None:
            raise KitError(f"{wheel}: not a wheel (no RECORD)")
        return hashlib.sha256(archive.read(record)).hexdigest()


def _version(wheel: Path) -> str:
    return wheel.name.split("-")[1]


def _site_vars(env: Mapping[str, str]) -> str:
    mirror = env.get(APT_MIRROR)
    sources = (
        [
            {
                "name": "karmayogi",
                "uris": mirror,
                "suites": "bookworm bookworm-updates",
                "components": "main",
            }
        ]
        if mirror
        else []
    )
    entries: list[tuple[str, str, Any]] = [
        (
            "karmayogi_apt_sources",
            "Apt sources (deb822) the hosts install from; empty keeps the hosts' own.\n"
            "Yours to edit: later renders keep this file.",
            sources,
        ),
        (
            "karmayogi_wheelhouse_url",
            "A wheelhouse (`karmayogi bundle`) for pip --no-index; empty uses the index.",
            env.get(WHEELHOUSE, ""),
        ),
        ("nginx_certificates", "Certificates by public name; none: self-signed (trials).", {}),
        (
            "karmayogi_trusted_ca_certificates",
            "CA certificates (PEM files here) the hosts trust, e.g. the CA that signed\n"
            "nginx_certificates: the portals call each other and Keycloak by name.",
            [],
        ),
        (
            "backup_destination",
            "A folder on the host or s3://bucket/prefix.",
            "/var/backups/karmayogi",
        ),
        ("backup_keep", "Backups kept.", 14),
    ]
    text = _yaml_doc(entries)
    return text.replace("edits are overwritten", "yours to edit, kept by later renders")


# --- the vault -------------------------------------------------------------------------------


def read_vault(path: Path, password_file: Path) -> dict[str, Any]:
    """The decrypted vault's variables (empty when there is no vault yet)."""
    if not path.exists():
        return {}
    done = subprocess.run(
        [
            _ansible_tool("ansible-vault"),
            "view",
            "--vault-password-file",
            str(password_file),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise KitError(f"{path}: cannot decrypt the vault with the given password file")
    yaml = YAML(typ="safe", pure=True)
    data = yaml.load(done.stdout) or {}
    if not isinstance(data, dict):
        raise KitError(f"{path}: the vault does not hold a mapping of variables")
    return data


def _check_state_secrets(given: Sequence[StateSecret], vault: Mapping[str, Any]) -> None:
    """Refuse a secret the spec names that neither the store nor the vault holds."""
    for secret in given:
        if secret.value is None and secret.variable not in vault:
            raise KitError(
                f"{secret.where}: secret {secret.name!r} is not in the local secret store; "
                f"add it with `karmayogi identity secret {secret.code} {secret.name}` (the "
                "value is read from standard input), then render again"
            )


def _ensure_vault(
    path: Path,
    password_file: Path,
    names: Sequence[str],
    rendered: Sequence[RenderedTenant],
    given: Sequence[StateSecret] = (),
) -> None:
    """Add a generated value for every secret the vault lacks and keep every value it has;
    the state's secrets take the store's value, or keep the vault's when the store has none
    (rendered on another machine), and one in neither stops the render before any write."""
    values = read_vault(path, password_file)
    _check_state_secrets(given, values)
    updated = {s.variable: s.value for s in given if s.value is not None}
    changed = {k: v for k, v in updated.items() if values.get(k) != v}
    missing = [name for name in dict.fromkeys(names) if name not in values]
    if not missing and not changed:
        return
    values.update(changed)
    for name in missing:
        # 64 characters: Django wants a secret key of 50 or more.
        values[name] = secrets.token_urlsafe(48)
    for tenant in rendered:
        # The URL is made from the password and the database host, never stored twice.
        db = database_name(tenant.code)
        password = _jinja(vault_variable(tenant.code, DATABASE_PASSWORD))
        url = f"postgresql://{db}:{password}@{{{{ karmayogi_database_host }}}}:5432/{db}"
        values[vault_variable(tenant.code, "database_url")] = url
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(dict(sorted(values.items())), buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, clear = tempfile.mkstemp(dir=path.parent, prefix=".vault-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())
        done = subprocess.run(
            [
                _ansible_tool("ansible-vault"),
                "encrypt",
                "--vault-password-file",
                str(password_file),
                "--output",
                str(path),
                clear,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        Path(clear).unlink(missing_ok=True)
    if done.returncode != 0:
        raise KitError(f"{path}: ansible-vault could not encrypt the secrets")
    path.chmod(0o600)
