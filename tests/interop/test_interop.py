"""An independent client against a live jwtd: PyJWT's PyJWKClient verifies tokens offline from
the JWKS, and Authlib's OAuth 2.0 client runs the password, refresh_token and
client_credentials grants and revocation. Run by tests/api/interop.rs, which starts jwtd and
passes its address, a user and a registered client in the environment."""

import os
import sys

import jwt
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

BASE = os.environ["JWTD_URL"]
CLIENT_ID = os.environ["JWTD_CLIENT_ID"]
CLIENT_SECRET = os.environ["JWTD_CLIENT_SECRET"]
USERNAME = os.environ["JWTD_USERNAME"]
PASSWORD = os.environ["JWTD_PASSWORD"]
USER_ID = os.environ["JWTD_USER_ID"]
ALGORITHM = os.environ["JWTD_ALGORITHM"]

metadata = requests.get(f"{BASE}/.well-known/oauth-authorization-server", timeout=10).json()
TOKEN_ENDPOINT = metadata["token_endpoint"]
jwks_client = jwt.PyJWKClient(metadata["jwks_uri"])


def verify_offline(token):
    """What a resource server does: the key named by the token's kid, from the JWKS."""
    key = jwks_client.get_signing_key_from_jwt(token)
    assert key.algorithm_name == ALGORITHM, key.algorithm_name
    return jwt.decode(token, key, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "sub"]})


def introspect(token):
    response = requests.post(
        metadata["introspection_endpoint"],
        data={"token": token},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def password_session(auth_method):
    session = OAuth2Session(
        CLIENT_ID, CLIENT_SECRET, scope="read", token_endpoint_auth_method=auth_method
    )
    token = session.fetch_token(
        TOKEN_ENDPOINT, grant_type="password", username=USERNAME, password=PASSWORD
    )
    return session, token


def test_password_and_refresh():
    session, token = password_session("client_secret_basic")
    assert token["token_type"] == "Bearer" and token["scope"] == "read", token
    claims = verify_offline(token["access_token"])
    assert claims["sub"] == USER_ID and claims["client_id"] == CLIENT_ID, claims
    assert claims["scope"] == "read" and claims["token_type"] == "access", claims

    refreshed = session.refresh_token(TOKEN_ENDPOINT, refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"], "rotation is on"
    assert verify_offline(refreshed["access_token"])["sid"] == claims["sid"]

    # The spent refresh token again: reuse, refused, and the whole session is revoked.
    try:
        session.refresh_token(TOKEN_ENDPOINT, refresh_token=token["refresh_token"])
        raise AssertionError("a reused refresh token was accepted")
    except OAuthError as error:
        assert error.error == "invalid_grant", error.error
    assert introspect(refreshed["access_token"]) == {"active": False}


def test_client_credentials():
    session = OAuth2Session(CLIENT_ID, CLIENT_SECRET, scope="read write")
    token = session.fetch_token(TOKEN_ENDPOINT, grant_type="client_credentials")
    assert "refresh_token" not in token, token
    claims = verify_offline(token["access_token"])
    assert claims["sub"] == CLIENT_ID and claims["scope"] == "read write", claims
    assert introspect(token["access_token"])["active"] is True


def test_revocation():
    session, token = password_session("client_secret_post")
    assert introspect(token["access_token"])["active"] is True
    response = session.revoke_token(
        metadata["revocation_endpoint"], token["refresh_token"], token_type_hint="refresh_token"
    )
    assert response.status_code == 200, response.text
    assert introspect(token["refresh_token"]) == {"active": False}
    assert introspect(token["access_token"]) == {"active": False}
    # The signature still checks out offline; revocation is what introspection is for.
    verify_offline(token["access_token"])
    unknown = session.revoke_token(metadata["revocation_endpoint"], "not-a-token")
    assert unknown.status_code == 200, unknown.text


def test_wrong_secret_is_invalid_client():
    session = OAuth2Session(CLIENT_ID, "not-the-secret")
    try:
        session.fetch_token(TOKEN_ENDPOINT, grant_type="client_credentials")
        raise AssertionError("a wrong client secret was accepted")
    except OAuthError as error:
        assert error.error == "invalid_client", error.error


if __name__ == "__main__":
    tests = [test_password_and_refresh, test_client_credentials, test_revocation,
             test_wrong_secret_is_invalid_client]
    for test in tests:
        test()
        print(f"ok {test.__name__} ({ALGORITHM})")
    sys.exit(0)
