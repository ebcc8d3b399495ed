"""The page handlers' one form pattern: call the backend, re-render the form on an expected
error (the user can fix it), redirect after success (303, so a reload does not post again)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection
from typing import TypeVar

from aiohttp import web

from gateway.errors import ApiError

T = TypeVar("T")
Rerender = Callable[[ApiError], Awaitable[web.StreamResponse] | web.StreamResponse]


async def form_action(
    action: Awaitable[T],
    rerender: Rerender,
    redirect: str | Callable[[T], str],
    *,
    expected: Collection[int] = (409, 422),
    then: Callable[[T], object] | None = None,
) -> web.StreamResponse:
    """Await `action`; an ApiError whose status is in `expected` answers `rerender(exc)` (the
    form again, with the error next to its field); any other error goes on to the error pages.
    After success, `then(result)` (e.g. dropping a cache entry), then a 303 to `redirect`."""
    try:
        result = await action
    except ApiError as exc:
        if exc.status not in expected:
            raise
        page = rerender(exc)
        return await page if inspect.isawaitable(page) else page
    if then is not None:
        then(result)
    raise web.HTTPSeeOther(redirect(result) if callable(redirect) else redirect)
