"""Replay protection by default for every worker: used jtis in the feedback database (issue #13, item 5).

SQLite and a real PostgreSQL (the throw-away server of tests/test_feedback_postgres.py),
two apps on one database standing for two workers or instances, and `rpl-cds serve`
with its default two workers and no Redis.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from service.replay import MemoryReplayCache, SqlReplayCache, build_replay_cache, used_jti_table
from tests.fhir_server import free_port
from tests.test_auth import DISCOVERY, ISS, assert_refused, auth_settings, call, close, issuer, new_app, token
from tests.test_feedback_postgres import postgres_url  # noqa: F401 (the fixture)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # each test starts with no jti remembered
        connection.execute(sa.text("DROP TABLE IF EXISTS rpl_used_jti"))
    engine.dispose()
    return url


def test_by_default_used_jtis_go_to_the_feedback_database_and_redis_stays_an_option(tmp_path):
    assert isinstance(build_replay_cache("", f"sqlite:///{tmp_path / 'f.sqlite3'}"), SqlReplayCache)
    assert isinstance(build_replay_cache("", "sqlite://"), MemoryReplayCache)  # no other process can see it anyway
    assert type(build_replay_cache("redis://127.0.0.1:1/0", "sqlite://")).__name__ == "RedisReplayCache"


def test_a_jti_is_accepted_once_per_issuer(database_url):
    cache = SqlReplayCache(database_url)
    assert cache.first_use(ISS, "jti-1", 300)
    assert not cache.first_use(ISS, "jti-1", 300)
    assert cache.first_use("https://other.example.org", "jti-1", 300)
    assert cache.first_use(ISS, "jti-2", 300)
    cache.close()


def test_a_jti_is_remembered_until_its_token_expires_and_then_purged(database_url):
    now = [1_000_000.0]
    cache = SqlReplayCache(database_url, clock=lambda: now[0])
    assert cache.first_use(ISS, "jti-1", 120)
    now[0] += 119
    assert not cache.first_use(ISS, "jti-1", 120)
    now[0] += 1  # the token has expired (exp + skew): the row may be taken over
    assert cache.first_use(ISS, "jti-1", 120)
    assert not cache.first_use(ISS, "jti-1", 120)
    now[0] += 3600  # an hour on, the next call purges what expired
    assert cache.first_use(ISS, "jti-2", 10)
    assert len(cache) == 1
    cache.close()


def test_two_apps_on_one_database_refuse_the_second_use_of_a_jti(tmp_path, database_url):
    apps = [new_app(auth_settings(tmp_path, database_url=database_url)) for _ in range(2)]
    first, second = (app.test_client() for app in apps)
    jwt_token = token()
    assert call(first, DISCOVERY, jwt_token).status_code == 200
    assert_refused(call(second, DISCOVERY, jwt_token))
    assert_refused(call(first, DISCOVERY, jwt_token))
    for app in apps:
        close(app)


def test_concurrent_replays_across_two_apps_on_one_database_pass_once(tmp_path, database_url):
    apps = [new_app(auth_settings(tmp_path, database_url=database_url)) for _ in range(2)]
    jwt_token = token()
    with ThreadPoolExecutor(max_workers=8) as pool:  # a test client per call: they are not thread-safe
        statuses = list(pool.map(lambda i: call(apps[i % 2].test_client(), DISCOVERY, jwt_token).status_code, range(24)))
    assert statuses.count(200) == 1 and statuses.count(401) == 23
    for app in apps:
        close(app)


def test_an_unreachable_database_is_503_not_a_pass(tmp_path):
    app = new_app(auth_settings(tmp_path, database_url=f"postgresql+psycopg://rpl@127.0.0.1:{free_port()}/postgres"))
    response = call(app.test_client(), DISCOVERY, token())
    assert response.status_code == 503
    close(app)


def test_the_in_memory_store_is_used_only_with_an_in_memory_database(tmp_path):
    app = new_app(auth_settings(tmp_path, database_url="sqlite://"))
    assert isinstance(app.extensions["rpl_auth"].replay, MemoryReplayCache)
    close(app)


def test_a_sqlite_database_gets_the_table_with_the_first_call(tmp_path):
    url = f"sqlite:///{tmp_path / 'feedback.sqlite3'}"
    app = new_app(auth_settings(tmp_path, database_url=url))
    assert call(app.test_client(), DISCOVERY, token()).status_code == 200
    with sa.create_engine(url).connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(used_jti_table)).scalar_one() == 1
    close(app)


def test_with_the_default_settings_a_replayed_token_is_refused_by_every_worker(tmp_path):
    """rpl-cds serve: two workers, no Redis, the default SQLite database."""
    from tests.serve import rpl_cds_serve

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPL_")}
    env.update(RPL_PUBLIC_BASE_URL=url, RPL_AUTH_ISSUERS=json.dumps([issuer()]),
               RPL_DATABASE_URL=f"sqlite:///{tmp_path / 'feedback.sqlite3'}")
    with rpl_cds_serve(env, tmp_path, workers=2, port=port) as (served, _out, err):
        jwt_token = token(aud=f"{url}{DISCOVERY}")
        statuses = []
        for _ in range(20):  # a new connection each time: each may land on either worker
            with requests.Session() as session:
                statuses.append(session.get(f"{served}{DISCOVERY}", headers={"Authorization": f"Bearer {jwt_token}"},
                                            timeout=30).status_code)
        assert statuses == [200] + [401] * 19
        assert "keep separate JWT replay memories" not in err.read_text()
