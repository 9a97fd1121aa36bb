"""A Hugging Face Hub on loopback, speaking the HTTP API that `snapshot_download` uses."""

from __future__ import annotations

import hashlib
import threading

from aiohttp import web

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_app(repos: dict[str, dict[str, bytes]], requests: list[str]) -> web.Application:
    async def info(request: web.Request) -> web.Response:
        requests.append(f"{request.method} {request.path}")
        files = repos.get(request.match_info["repo"])
        if files is None:
            return web.json_response({"error": "Repository not found"}, status=404,
                                     headers={"X-Error-Code": "RepoNotFound"})
        return web.json_response({
            "id": request.match_info["repo"], "sha": COMMIT,
            "siblings": [{"rfilename": name} for name in files],
        })

    async def tree(request: web.Request) -> web.Response:
        requests.append(f"{request.method} {request.path}")
        files = repos.get(request.match_info["repo"], {})
        return web.json_response([
            {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            for name, data in files.items()
        ])

    async def resolve(request: web.Request) -> web.StreamResponse:
        requests.append(f"{request.method} {request.path}")
        data = repos.get(request.match_info["repo"], {}).get(request.match_info["file"])
        if data is None:
            return web.Response(status=404, headers={"X-Error-Code": "EntryNotFound"})
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                   "Content-Length": str(len(data))}
        if request.method == "HEAD":
            return web.Response(headers=headers)
        return web.Response(body=data, headers=headers)

    app = web.Application()
    repo = "{repo:[^/]+/[^/]+}"
    app.router.add_get(f"/api/models/{repo}/revision/{{revision}}", info)
    app.router.add_get(f"/api/models/{repo}", info)
    app.router.add_get(f"/api/models/{repo}/tree/{{revision}}", tree)
    app.router.add_route("*", f"/{repo}/resolve/{{revision}}/{{file:.+}}", resolve)
    return app


class FakeHub:
    """Serves in a background thread so blocking clients (and subprocesses) can use it."""

    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        import asyncio

        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(hub_app(repos, self.requests))
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
