"""Schemathesis hooks for .ci/schemathesis: a staff bearer token that survives the fuzzer.

The fuzzer calls operations that end the token's validity: `POST /api/token/logout-all/`
revokes it, `DELETE /api/users/me/sessions/{sid}` and `DELETE /api/users/{id}` can hit the
fuzzing user's own session or account (schemathesis feeds ids it saw in responses back into
requests), `PATCH /api/users/me` renames the account. Each time a request answers 401 the token
is fetched again (schemathesis' `retry_on`) and the request replayed: by logging in again or, when
the account itself is gone (renamed, deactivated, deleted), by creating a new staff user with the
`jwtd` CLI first. A 403 does the same, for `PATCH /api/users/{id}` taking the account's staff flag.

Environment (set by .ci/schemathesis): JWTD_ST_BASE_URL, JWTD_ST_USERNAME, JWTD_ST_PASSWORD,
JWTD_ST_BIN, JWTD_ST_CLIENT_ID, JWTD_ST_CLIENT_SECRET and the JWTD__… configuration the server
runs with. Both schemes are set here, not in a config file's [auth]: schemathesis drops the hooks'
providers when the configuration defines any auth.
"""

import base64
import os
import subprocess
import threading
import uuid

import requests
import schemathesis

BASE_URL = os.environ["JWTD_ST_BASE_URL"].rstrip("/")
PASSWORD = os.environ["JWTD_ST_PASSWORD"]
JWTD = os.environ["JWTD_ST_BIN"]

_lock = threading.Lock()
_account = {"username": os.environ["JWTD_ST_USERNAME"]}


def _login(username):
    return requests.post(
        f"{BASE_URL}/api/token/",
        json={"username": username, "password": PASSWORD},
        timeout=30,
    )


def _new_staff_user():
    username = f"{os.environ['JWTD_ST_USERNAME']}-{uuid.uuid4().hex[:12]}"
    subprocess.run(
        [JWTD, "users", "create", "--username", username, "--password", PASSWORD, "--staff"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    _account["username"] = username


def _is_staff(access):
    me = requests.get(
        f"{BASE_URL}/api/users/me/",
        headers={"Authorization": f"Bearer {access}"},
        timeout=30,
    )
    return me.status_code == 200 and me.json().get("is_staff") is True


def _secured_by(scheme):
    def matches(ctx):
        security = ctx.operation.definition.raw.get("security") or []
        return any(scheme in requirement for requirement in security)

    return matches


@schemathesis.auth(refresh_interval=3600, retry_on=[401, 403]).apply_to(_secured_by("BearerAuth"))
class StaffBearer:
    def get(self, case, context):
        with _lock:
            response = _login(_account["username"])
            if response.status_code == 200 and not _is_staff(response.json()["access"]):
                response = None
            if response is None or response.status_code == 401:
                _new_staff_user()
                response = _login(_account["username"])
            response.raise_for_status()
            return response.json()["access"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.auth(refresh_interval=None, retry_on=[]).apply_to(_secured_by("ClientBasic"))
class ClientBasic:
    """The registered OAuth client, as HTTP Basic (RFC 6749 §2.3.1)."""

    def get(self, case, context):
        pair = f"{os.environ['JWTD_ST_CLIENT_ID']}:{os.environ['JWTD_ST_CLIENT_SECRET']}"
        return base64.b64encode(pair.encode()).decode()

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Basic {data}"
