"""Handlers of the Integration Manager API (seed 003): login, job configs, job runs."""

from __future__ import annotations

import structlog
from aiohttp import web

from jetwatch.emulators.im.auth import SessionStore, TokenPair, User
from jetwatch.emulators.im.engine import RunEngine
from jetwatch.emulators.im.middleware import USER
from jetwatch.emulators.im.state import ImState, JobConfig, JsonDict, config_json, im_date, run_json
from jetwatch.emulators.jet.validation import ErrorAnswer, bad_request

log = structlog.get_logger(__name__)

MAX_PAGE_LIMIT = 100


async def read_object(request: web.Request, *, optional: bool = False) -> JsonDict:
    """The request body as a JSON object, whatever its Content-Type says; 400 otherwise."""
    if optional and not (await request.read()).strip():
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("body must be valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("body must be a JSON object")
    return body


def _string(body: JsonDict, key: str, *, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise bad_request(f"{key} must be a non-empty string")
    return value


def _flag(body: JsonDict, key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise bad_request(f"{key} must be true or false")
    return value


def _variables(body: JsonDict) -> dict[str, str]:
    value = body.get("variables", {})
    if not isinstance(value, dict):
        raise bad_request("variables must be an object of name -> value")
    variables: dict[str, str] = {}
    for name, item in value.items():
        if isinstance(item, dict | list) or item is None:
            raise bad_request(f"variables.{name} must be a string, number or boolean")
        variables[str(name)] = str(item).lower() if isinstance(item, bool) else str(item)
    return variables


def _page(request: web.Request) -> tuple[int, int]:
    try:
        offset = int(request.query.get("offset", "0"))
        limit = int(request.query.get("limit", str(MAX_PAGE_LIMIT)))
    except ValueError:
        raise bad_request("offset and limit must be integers") from None
    if offset < 0 or not 1 <= limit <= MAX_PAGE_LIMIT:
        raise bad_request(f"offset must be >= 0 and limit between 1 and {MAX_PAGE_LIMIT}")
    return offset, limit


def _token_json(pair: TokenPair) -> JsonDict:
    return {
        "access_token": pair.access_token,
        "token_type": "bearer",
        "refresh_token": pair.refresh_token,
        "expires_in": pair.expires_in,
    }


class ImRoutes:
    """The API handlers, bound to one emulator's state, sessions and run engine."""

    def __init__(self, state: ImState, sessions: SessionStore, engine: RunEngine) -> None:
        self._state = state
        self._sessions = sessions
        self._engine = engine

    def routes(self) -> list[web.RouteDef]:
        config = "/api/jobconfigs/{id}"
        return [
            web.post("/api/login", self.login),
            web.post("/api/login/refresh", self.refresh),
            web.get("/api/jobconfigs", self.list_configs),
            web.post("/api/jobconfigs", self.create_config),
            web.get(config, self.get_config),
            web.put(config, self.update_config),
            web.post(config + "/jobs", self.run_config),
            web.get(config + "/jobs", self.list_runs),
            web.get("/api/jobs/{id}", self.get_run),
        ]

    async def login(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise bad_request("username and password must be strings")
        pair = self._sessions.login(username, password)
        if pair is None:
            raise ErrorAnswer(401, "invalid username or password")
        log.info("im_emulator_login", username=username)
        return web.json_response(_token_json(pair))

    async def refresh(self, request: web.Request) -> web.Response:
        token = (await read_object(request)).get("refresh_token")
        if not isinstance(token, str) or not token:
            raise bad_request("refresh_token must be a non-empty string")
        pair = self._sessions.refresh(token)
        if pair is None:
            raise ErrorAnswer(401, "invalid or expired refresh token")
        return web.json_response(_token_json(pair))

    async def list_configs(self, request: web.Request) -> web.Response:
        base = _base(request)
        return web.json_response([config_json(base, c) for c in self._state.configs.values()])

    async def create_config(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        config = self._state.add_config(
            _string(body, "name"),
            _string(body, "description", default=""),
            _flag(body, "active", True),
            request[USER],
        )
        log.info("im_emulator_config_created", config_id=config.config_id, name=config.name)
        return web.json_response(config_json(_base(request), config), status=201)

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(config_json(_base(request), self._config(request)))

    async def update_config(self, request: web.Request) -> web.Response:
        """Seed 003 step 4: name, description, active and runtimeConfig may change."""
        config = self._config(request)
        body = await read_object(request)
        if "name" in body:
            config.name = _string(body, "name")
        config.description = _string(body, "description", default=config.description)
        config.active = _flag(body, "active", config.active)
        runtime = body.get("runtimeConfig")
        if runtime is not None:
            if not isinstance(runtime, dict):
                raise bad_request("runtimeConfig must be an object")
            config.runtime_config = {
                "packagePrefix": f"configuration\\{config.config_id}",
                "packageArtifactOverride": False,
                **runtime,
            }
        user: User = request[USER]
        config.last_modified, config.last_modified_by = im_date(), user
        return web.json_response(config_json(_base(request), config))

    async def run_config(self, request: web.Request) -> web.Response:
        config = self._config(request)
        body = await read_object(request, optional=True)
        variables = _variables(body)
        if not config.active:
            raise bad_request(f"job config {config.config_id} is not active")
        run = self._state.add_run(config, variables, request[USER])
        self._engine.start(run)
        log.info("im_emulator_run_created", run_id=run.run_id, config_id=config.config_id)
        return web.json_response(run_json(_base(request), run, config), status=201)

    async def list_runs(self, request: web.Request) -> web.Response:
        """Assumed call: the config's runs, newest first, paged by offset/limit."""
        config = self._config(request)
        offset, limit = _page(request)
        runs = self._state.runs_of(config.config_id)
        base = _base(request)
        items = [run_json(base, r, config) for r in runs[offset : offset + limit]]
        page = {"items": items, "offset": offset, "limit": limit, "totalResultCount": len(runs)}
        return web.json_response(page)

    async def get_run(self, request: web.Request) -> web.Response:
        run = self._state.runs.get(request.match_info["id"])
        if run is None:
            raise ErrorAnswer(404, f"job {request.match_info['id']} not found")
        config = self._state.configs[run.config_id]
        return web.json_response(run_json(_base(request), run, config))

    def _config(self, request: web.Request) -> JobConfig:
        config = self._state.configs.get(request.match_info["id"])
        if config is None:
            raise ErrorAnswer(404, f"job config {request.match_info['id']} not found")
        return config


def _base(request: web.Request) -> str:
    """The origin the client used, for ``href`` fields."""
    return str(request.url.origin())
