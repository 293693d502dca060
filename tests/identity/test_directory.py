"""A state's directory (OpenLDAP's slapd, started for this module) as a realm's user
federation: read-only, departments from groups, the post from an attribute, the bind password
through Keycloak's vault."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest

from identity.admin import AdminAPI
from identity.desired import ExternalProvider, Federation, ProviderMapper, TenantRealm, VaultSecret
from identity.errors import IdentityError
from identity.reconciler import Reconciler
from identity.vault import FileVault
from infra.net import free_port
from infra.targets.local.keycloak import LocalKeycloak
from tests.identity.browser import FlowError, sign_in
from tests.identity.test_providers import unverified_claims
from tests.identity.test_reconciler import PASSWORD, admin_api, create_user, make_tenant, portal
from tests.ldap import (
    ADMIN_DN,
    GROUPS_DN,
    PEOPLE_DN,
    READER_DN,
    LdapServer,
    Officer,
    directory_ldif,
    running_slapd,
)

OFFICERS = (
    Officer("priya.singh", "Dir-pass-priya-1", "priya@state.example", "Block Officer", ("health",)),
    Officer("arun.das", "Dir-pass-arun-22", "arun@state.example", "Headmaster", ("education",)),
)


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LdapServer]:
    with running_slapd(tmp_path_factory.mktemp("slapd"), OFFICERS) as server:
        yield server


def directory_provider(url: str, **config: str) -> ExternalProvider:
    return ExternalProvider(
        alias="state-ldap",
        kind="ldap",
        display_name="State directory",
        config={
            "connectionUrl": url,
            "usersDn": PEOPLE_DN,
            "bindDn": READER_DN,
            "bindCredential": "${vault.ldap-reader}",
            **config,
        },
        mappers=(
            ProviderMapper(GROUPS_DN, department="health"),
            ProviderMapper(GROUPS_DN, department="education"),
            ProviderMapper("title", attribute="post"),
        ),
    )


def reconciler(keycloak: LocalKeycloak, tenant: TenantRealm) -> Reconciler:
    return Reconciler(
        admin_api(keycloak),
        Federation(keycloak.url, (tenant,)),
        vault=FileVault(keycloak.paths.vault),
    )


@pytest.fixture
def tenant(keycloak: LocalKeycloak, directory: LdapServer) -> Iterator[TenantRealm]:
    code = f"delta-{uuid.uuid4().hex[:8]}"
    realm = dataclasses.replace(
        make_tenant(code),
        providers=(directory_provider(directory.url),),
        vault=(VaultSecret("ldap-reader", directory.reader_password),),
    )
    yield realm
    api = admin_api(keycloak)
    if api.get(f"/{code}", "cleanup") is not None:
        api.delete(f"/{code}", "cleanup")
    FileVault(keycloak.paths.vault).remove_realm(code)


def user_named(api: AdminAPI, realm: str, username: str) -> dict[str, object]:
    found = api.get(f"/{realm}/users", "user", username=username, exact="true")
    assert len(found) == 1
    return dict(found[0])


def test_officers_sign_in_with_directory_passwords_and_land_in_their_departments(
    keycloak: LocalKeycloak, tenant: TenantRealm
) -> None:
    reconciler(keycloak, tenant).apply()
    client = portal(keycloak, tenant)

    for officer, department in ((OFFICERS[0], "health"), (OFFICERS[1], "education")):
        claims = unverified_claims(sign_in(client, officer.uid, officer.password)["access_token"])
        assert claims["groups"] == [f"/departments/{department}"]
        assert claims["email"] == officer.email
        assert claims["post"] == officer.title  # the portal's post, from the directory

    api = admin_api(keycloak)
    priya = user_named(api, tenant.code, "priya.singh")
    assert priya["attributes"]["post"] == ["Block Officer"]  # type: ignore[index]
    assert priya["federationLink"]
    # Read-only: the directory checks the password; Keycloak stores none. The admin API lists
    # the directory's password as a federated credential: no id, no creation date of its own.
    credentials = api.get(f"/{tenant.code}/users/{priya['id']}/credentials", "credentials")
    passwords = [c for c in credentials if c["type"] == "password"]
    assert [c.get("federationLink") for c in passwords] == [priya["federationLink"]]
    assert [c for c in passwords if "id" in c or c.get("createdDate", -1) > 0] == []
    with pytest.raises(FlowError):
        sign_in(client, "priya.singh", "not-the-directory-password")
    # The bind password reached Keycloak only through the vault.
    ldap = next(
        c
        for c in api.get(
            f"/{tenant.code}/components", "ldap", type="org.keycloak.storage.UserStorageProvider"
        )
        if c["name"] == "state-ldap"
    )
    assert ldap["config"]["bindCredential"] == ["${vault.ldap-reader}"]
    assert ldap["config"]["editMode"] == ["READ_ONLY"]


def test_second_apply_changes_nothing_and_drift_is_put_back(
    keycloak: LocalKeycloak, tenant: TenantRealm
) -> None:
    reconciler(keycloak, tenant).apply()
    again = reconciler(keycloak, tenant)
    assert again.apply() == []
    assert again.api.writes == 0

    api = admin_api(keycloak)
    ldap = next(
        c
        for c in api.get(
            f"/{tenant.code}/components", "ldap", type="org.keycloak.storage.UserStorageProvider"
        )
        if c["name"] == "state-ldap"
    )
    api.put(
        f"/{tenant.code}/components/{ldap['id']}",
        {**ldap, "config": {**ldap["config"], "editMode": ["WRITABLE"]}},
        "tamper",
    )
    changes = reconciler(keycloak, tenant).plan()
    assert [c.describe() for c in changes] == [
        f"~ {tenant.code}: ldap {tenant.code}/state-ldap (update)\n"
        "    config.editMode: ['WRITABLE'] -> ['READ_ONLY']"
    ]
    reconciler(keycloak, tenant).apply()
    assert reconciler(keycloak, tenant).plan() == []


def test_a_directory_that_is_gone_is_named_at_sign_in_and_local_accounts_still_work(
    keycloak: LocalKeycloak, tenant: TenantRealm, directory: LdapServer
) -> None:
    reconciler(keycloak, tenant).apply()
    client = portal(keycloak, tenant)
    sign_in(client, "arun.das", OFFICERS[1].password)  # imported while the directory is up
    create_user(admin_api(keycloak), tenant.code, "local.officer")

    directory.stop()
    try:
        with pytest.raises(FlowError) as refused:
            sign_in(client, "arun.das", OFFICERS[1].password, ui_locales="en")
        with pytest.raises(FlowError) as refused_in_hindi:
            sign_in(client, "arun.das", OFFICERS[1].password, ui_locales="hi")
        assert sign_in(client, "local.officer", PASSWORD)["access_token"]
    finally:
        directory.start()
    assert "the directory cannot be reached just now" in str(refused.value)
    assert "वह डायरेक्टरी अभी उपलब्ध नहीं है" in str(refused_in_hindi.value)


def test_an_unreachable_directory_is_refused_before_anything_is_applied(
    keycloak: LocalKeycloak, tenant: TenantRealm
) -> None:
    url = f"ldap://127.0.0.1:{free_port()}"
    unreachable = dataclasses.replace(tenant, providers=(directory_provider(url),))
    apply = reconciler(keycloak, unreachable)

    with pytest.raises(IdentityError) as refused:
        apply.apply()

    message = str(refused.value)
    assert message.startswith(f"{tenant.code}: directory state-ldap: cannot reach {url} (")
    assert message.endswith("; nothing was applied") and "\n" not in message
    assert apply.api.writes == 0
    assert admin_api(keycloak).get(f"/{tenant.code}", "realm") is None
    assert FileVault(keycloak.paths.vault).read(tenant.code, "ldap-reader") is None


def test_an_on_demand_sync_imports_every_officer_with_department_and_post(
    keycloak: LocalKeycloak, tenant: TenantRealm
) -> None:
    reconciler(keycloak, tenant).apply()

    counts = reconciler(keycloak, tenant).sync_directory(tenant.code, "state-ldap", full=True)

    assert counts == {"added": 2, "updated": 0, "removed": 0, "failed": 0}
    api = admin_api(keycloak)
    arun = user_named(api, tenant.code, "arun.das")
    assert arun["attributes"]["post"] == ["Headmaster"]  # type: ignore[index]
    groups = api.get(f"/{tenant.code}/users/{arun['id']}/groups", "groups")
    assert [g["path"] for g in groups] == ["/departments/education"]
    with pytest.raises(IdentityError) as unknown:
        reconciler(keycloak, tenant).sync_directory(tenant.code, "elsewhere")
    assert str(unknown.value) == (
        f"{tenant.code}: no directory 'elsewhere' in realm {tenant.code}; apply it first"
    )


def new_officer(directory: LdapServer) -> Officer:
    """An officer of the test's own, so that changing their password touches no other test."""
    officer = Officer(
        f"sunil.{uuid.uuid4().hex[:8]}", "Dir-pass-sunil-3", "sunil@state.example", "Clerk", ()
    )
    entries = directory_ldif((officer,), directory.reader_password).split("\n\n")
    directory.add(next(e for e in entries if e.startswith(f"dn: uid={officer.uid},")) + "\n")
    return officer


def reset_password(api: AdminAPI, realm: str, username: str, password: str) -> None:
    user = user_named(api, realm, username)
    body = {"type": "password", "value": password, "temporary": False}
    api.put(f"/{realm}/users/{user['id']}/reset-password", body, "reset password")


NEW_PASSWORD = "Dir-new-pass-2026-zeta"


def test_writable_mode_writes_a_password_changed_in_keycloak_to_the_directory(
    keycloak: LocalKeycloak, tenant: TenantRealm, directory: LdapServer
) -> None:
    officer = new_officer(directory)
    dn = f"uid={officer.uid},{PEOPLE_DN}"
    # Writing passwords needs a bind DN the directory lets write them: here its root DN.
    writable = dataclasses.replace(
        tenant,
        providers=(directory_provider(directory.url, editMode="WRITABLE", bindDn=ADMIN_DN),),
        vault=(VaultSecret("ldap-reader", directory.root_password),),
    )
    reconciler(keycloak, writable).apply()
    client = portal(keycloak, writable)
    sign_in(client, officer.uid, officer.password)  # imports the officer
    api = admin_api(keycloak)

    reset_password(api, writable.code, officer.uid, NEW_PASSWORD)

    assert directory.binds(dn, NEW_PASSWORD)
    assert not directory.binds(dn, officer.password)
    assert sign_in(client, officer.uid, NEW_PASSWORD)["access_token"]
    # Still no password of Keycloak's own: the directory holds the new one.
    user = user_named(api, writable.code, officer.uid)
    credentials = api.get(f"/{writable.code}/users/{user['id']}/credentials", "credentials")
    assert [c for c in credentials if c["type"] == "password" and "id" in c] == []


def test_read_only_mode_refuses_a_password_change_and_the_directory_keeps_its_own(
    keycloak: LocalKeycloak, tenant: TenantRealm, directory: LdapServer
) -> None:
    officer = new_officer(directory)
    dn = f"uid={officer.uid},{PEOPLE_DN}"
    reconciler(keycloak, tenant).apply()  # editMode READ_ONLY, the default
    client = portal(keycloak, tenant)
    sign_in(client, officer.uid, officer.password)

    with pytest.raises(IdentityError) as refused:
        reset_password(admin_api(keycloak), tenant.code, officer.uid, NEW_PASSWORD)

    assert "HTTP 400" in str(refused.value)
    assert directory.binds(dn, officer.password)
    assert not directory.binds(dn, NEW_PASSWORD)
    assert sign_in(client, officer.uid, officer.password)["access_token"]
    with pytest.raises(FlowError):
        sign_in(client, officer.uid, NEW_PASSWORD)
