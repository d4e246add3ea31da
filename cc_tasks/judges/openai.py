"""Kind ``openai``: any OpenAI-compatible chat-completions endpoint as the judge.

Defaults are the paper's setting (method section 2): gpt-4o, temperature 0,
seed 42, a tiny output budget. ``max_tokens`` is 5, not the paper's 2: GPT-4o
needs 1-2 tokens for "Yes."/"no", but open models behind vLLM's OpenAI server
often open with a space, a newline or markdown ("**Yes**" is 3 tokens). Five
tokens keep those parseable while a judgment still costs almost nothing, and
:func:`~cc_tasks.judges.prompt.parse_verdict` rejects anything that is not a
clear one-word answer.

Requests run concurrently on one ``AsyncOpenAI`` client (default 32 at a time).
The client's own retries are off (``max_retries=0``) so the retry policy here
is the only one: 408/409/429/5xx, timeouts and connection errors are retried
with exponential backoff (429 honours ``Retry-After``/``retry-after-ms``),
bounded by ``max_attempts`` and ``max_retry_time`` seconds per item. An item
that still fails becomes ``Verdict("error", raw=<message>)``. 401/403/404 stop
the whole batch at once (a wrong key, model or URL will not heal by retrying).

Valid verdicts are cached in SQLite (:mod:`.cache`), keyed with the normalised
base URL (:func:`endpoint_id`): another server is another judge. The API key is
read from the environment at request time and appears in no verdict, cache
key or row, description or log line (messages are scrubbed before they leave).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import logging
import math
import os
import re
import threading
import time
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

from cc_tasks.errors import message
from cc_tasks.seeding import stable_rng

from .base import ERROR, JudgeConfigError, Verdict
from .cache import JudgeCache
from .prompt_judge import Conversation, Deliver, PromptJudge
from .rubrics import COURSE_CORRECTION, get_rubric

log = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
NO_KEY_PLACEHOLDER = "EMPTY"  # what vLLM's docs send to a server started without --api-key
RETRY_STATUSES = frozenset({408, 409, 429})  # plus every 5xx
FATAL_STATUSES = frozenset({401, 403, 404})
T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, also when the caller already runs an event loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def safe_url(url: str) -> str:
    """``url`` without user:password, query or fragment (safe to log and to record)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def endpoint_id(url: str) -> str:
    """The endpoint as the cache keys it: :func:`safe_url` (no credentials, query or fragment),
    scheme and host lower-cased, default port and trailing slash dropped."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.port and parts.port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{parts.port}"
    return urlunsplit((scheme, host, parts.path.rstrip("/"), "", ""))


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP date)."""
    if headers is None:
        return None
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            delay = float(value) / divisor
        except ValueError:
            if header == "retry-after-ms":
                continue
            parsed = email.utils.parsedate_tz(value)
            if parsed is None:
                continue
            delay = email.utils.mktime_tz(parsed) - time.time()
        if math.isfinite(delay):
            return max(0.0, delay)
    return None


class OpenAIJudge(PromptJudge):
    """GPT-4o (paper setting) or any model behind an OpenAI-compatible URL (e.g. ``vllm serve``)."""

    kind: ClassVar[str] = "openai"
    _checked: ClassVar[set[tuple[str, str, str]]] = set()
    _check_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *,
        model: str = "gpt-4o",
        base_url: str | None = None,
        api_key_env: str | None = None,
        temperature: float = 0.0,
        seed: int | None = 42,
        max_tokens: int | None = None,
        concurrency: int = 32,
        timeout: float = 60.0,
        max_attempts: int = 6,
        max_retry_time: float = 300.0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        cache_path: str | None = None,
        use_cache: bool = True,
        progress: bool = True,
        endpoint_check: bool = True,
        name: str | None = None,
        probe: bool | None = None,
        rubric: str = COURSE_CORRECTION,
    ) -> None:
        """Options (all keyword): see README "Choosing a judge".

        ``rubric``: the question asked (:mod:`.rubrics`); ``max_tokens`` defaults to its
        reply budget (5 for course-correction).

        ``api_key_env`` names the environment variable holding the key (default
        ``OPENAI_API_KEY``). The key is required for api.openai.com or when the
        variable is named explicitly; a self-hosted server without auth (vLLM
        without ``--api-key``) works with no key. ``base_url`` defaults to
        ``$OPENAI_BASE_URL``, else OpenAI. ``endpoint_check``: :meth:`check` sends
        one 1-token request to fail fast on an unreachable endpoint, bad key or
        unknown model (``probe`` is its old name, still accepted).
        """
        self.rubric_name = rubric
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL
        self.key_env = api_key_env or DEFAULT_KEY_ENV
        self.key_env_explicit = bool(api_key_env)
        self.temperature = temperature
        self.seed = seed
        self.max_tokens = get_rubric(rubric).max_tokens if max_tokens is None else max_tokens
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_retry_time = max_retry_time
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.cache_path = cache_path
        self.use_cache = use_cache
        self.progress = progress
        self.endpoint_check = endpoint_check if probe is None else probe
        self._name = name
        self._cache: JudgeCache | None = None
        self.last_stats: dict[str, int] = {}

    # ----------------------------------------------------------------- config
    @property
    def name(self) -> str:
        if self._name:
            return self._name
        return "openai-" + re.sub(r"[^A-Za-z0-9._-]+", "_", str(self.model))

    @property
    def cache_model(self) -> str:
        return str(self.model)

    def params(self) -> dict[str, Any]:
        """Decoding parameters that change a verdict (part of the cache key)."""
        return {"temperature": self.temperature, "seed": self.seed, "max_tokens": self.max_tokens}

    def served_by(self) -> dict[str, Any]:
        """The endpoint (part of the cache key): verdicts of one server never stand in for another's."""
        return {"base_url": endpoint_id(self.base_url)}

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "model": self.model,
            "base_url": safe_url(self.base_url),
            "api_key_env": self.key_env,
            **self.params(),
            **self.rubric_fields(),
        }

    def _fail(self, message: str) -> JudgeConfigError:
        return JudgeConfigError(f"judge {self.kind!r}: {message}")

    def _validate(self) -> None:
        """Static checks: cheap, no network. Raises one clear line."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise self._fail("option 'model' must be a non-empty model name")
        url = self.base_url
        try:
            parts = urlsplit(url) if isinstance(url, str) else None
            port_ok = parts is not None and (parts.port is None or parts.port > 0)
        except ValueError:
            parts, port_ok = None, False
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or not port_ok
            or any(c.isspace() for c in url)
        ):
            shown = safe_url(url) if isinstance(url, str) and "@" in url else url
            raise self._fail(
                f"malformed base URL {shown!r}: expected http(s)://host[:port]/v1, "
                "e.g. http://localhost:8000/v1 for `vllm serve`"
            )
        numbers = {
            "concurrency": (self.concurrency, 1),
            "max_attempts": (self.max_attempts, 1),
            "max_tokens": (self.max_tokens, 1),
        }
        for option, (value, low) in numbers.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise self._fail(f"option {option!r} must be an integer >= {low}, got {value!r}")
        for option in ("timeout", "max_retry_time", "backoff_base", "backoff_max"):
            value = getattr(self, option)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise self._fail(f"option {option!r} must be a number >= 0, got {value!r}")
        if self._name is not None and ("," in self._name or not self._name.strip()):
            raise self._fail(f"option 'name' must be non-empty and without commas: {self._name!r}")
        if self.key_required() and not os.environ.get(self.key_env):
            raise self._fail(
                f"no API key: set the environment variable {self.key_env} "
                f"(or name another one with api_key_env / --judge-api-key-env)"
            )

    def key_required(self) -> bool:
        """A key is needed for OpenAI itself or when the user named the variable."""
        host = urlsplit(self.base_url).hostname or ""
        return self.key_env_explicit or host == "api.openai.com" or host.endswith(".openai.com")

    def _api_key(self) -> str:
        return os.environ.get(self.key_env) or NO_KEY_PLACEHOLDER

    def _scrub(self, text: str) -> str:
        """Remove the key (and URL credentials) from a message before it is logged or stored."""
        key = os.environ.get(self.key_env)
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        parts = urlsplit(self.base_url)
        if parts.password:
            text = text.replace(parts.password, "***")
        return re.sub(r"(?i)(bearer\s+)\S+", r"\1***", text)

    def _client(self) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=self._api_key(),
            base_url=self.base_url,
            max_retries=0,  # the retry policy below is the only one (and testable)
            timeout=self.timeout,
        )

    def check(self) -> None:
        """Validate the configuration; with ``endpoint_check`` also send one 1-token request
        (once per process and endpoint)."""
        self._validate()
        if self.endpoint_check:
            self._check_endpoint()

    def _check_endpoint(self) -> None:
        ident = (self.base_url, self.model, self.key_env)
        with self._check_lock:
            if ident in self._checked:
                return
            message = run_coroutine(self._check_once())
            if message is not None:
                raise self._fail(message)
            self._checked.add(ident)

    async def _check_once(self) -> str | None:
        """None when the endpoint answered usefully; else the one-line reason."""
        import openai

        url = safe_url(self.base_url)
        client = self._client()
        try:
            await client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": "Reply with the single word: yes"}],
                max_tokens=1,
                temperature=0,
                timeout=min(self.timeout, 30.0) or 30.0,
            )
        except openai.AuthenticationError:
            return f"{url} rejected the API key from ${self.key_env} (HTTP 401)"
        except openai.PermissionDeniedError:
            return f"{url} refused access to model {self.model!r} (HTTP 403)"
        except openai.NotFoundError:
            return (
                f"model {self.model!r} or the chat-completions route was not found at {url} "
                "(HTTP 404; the base URL usually ends with /v1)"
            )
        except openai.APITimeoutError:
            return (
                f"{url} did not answer a 1-token check request within {min(self.timeout, 30.0):g}s"
            )
        except openai.APIConnectionError as err:
            cause = err.__cause__ or err
            return f"cannot connect to {url}: {self._scrub(message(cause))[:200]}"
        except openai.APIStatusError as err:  # 429 / 5xx / 400: reachable; the real run retries
            log.warning(
                "judge endpoint check of %s got HTTP %s; continuing (the run retries)",
                url,
                err.status_code,
            )
        finally:
            await client.close()
        return None

    # ----------------------------------------------------------------- judging
    def _prepare(self) -> None:
        self._validate()

    def _answer(
        self,
        todo: list[str],
        first: dict[str, Conversation],
        keys: list[str],
        deliver: Deliver,
    ) -> None:
        run_coroutine(self._judge_all(todo, first, keys, deliver))

    async def _judge_all(
        self,
        todo: list[str],
        messages: dict[str, list[dict[str, str]]],
        keys: list[str],
        deliver: Deliver,
    ) -> None:
        from tqdm.auto import tqdm

        weight: dict[str, int] = {}
        for key in keys:
            weight[key] = weight.get(key, 0) + 1
        pending = sum(weight[key] for key in todo)
        bar = tqdm(
            total=len(keys),
            initial=len(keys) - pending,
            desc=f"judge {self.name}",
            unit="item",
            disable=not self.progress,
        )
        semaphore = asyncio.Semaphore(self.concurrency)
        fatal: list[str] = []
        client = self._client()

        async def one(key: str) -> None:
            async with semaphore:
                if fatal:
                    verdict = Verdict(ERROR, raw=f"not sent: {fatal[0]}")
                else:
                    verdict = await self._request(client, key, messages[key], fatal)
            deliver({key: verdict})  # cached at once: an interrupted run keeps it
            bar.update(weight[key])

        try:
            await asyncio.gather(*(one(key) for key in todo))
        finally:
            bar.close()
            await client.close()

    def _backoff(self, key: str, attempt: int) -> float:
        """Exponential backoff with a stable jitter in [0.5, 1] (spreads a burst of retries)."""
        base = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return base * (0.5 + 0.5 * stable_rng("judge-backoff", key, attempt).random())

    async def _request(
        self, client: Any, key: str, messages: list[dict[str, str]], fatal: list[str]
    ) -> Verdict:
        """One item: request, retry what may heal, give up within the attempt and time bounds."""
        import openai

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_retry_time
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - loop.time()
            retry_after: float | None = None
            try:
                response = await client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                    timeout=max(0.001, min(self.timeout, remaining)) if self.timeout else None,
                    **({"seed": self.seed} if self.seed is not None else {}),
                )
                content = response.choices[0].message.content if response.choices else None
                return self.rubric.verdict(content, raw=self._scrub(content or ""))
            except openai.APIStatusError as err:
                status = err.status_code
                reason = self._scrub(f"HTTP {status} ({type(err).__name__}): {err.message}")[:300]
                if status in FATAL_STATUSES:
                    fatal.append(reason)
                    return Verdict(ERROR, raw=reason)
                if status not in RETRY_STATUSES and status < 500:
                    return Verdict(ERROR, raw=reason)
                retry_after = parse_retry_after(err.response.headers)
            except openai.APITimeoutError:
                reason = f"timeout: no answer within {min(self.timeout, remaining):g}s"
            except openai.APIConnectionError as err:
                cause = err.__cause__ or err
                reason = self._scrub(f"connection error: {type(cause).__name__}: {message(cause)}")[
                    :300
                ]
            except Exception as err:  # a malformed reply must not sink the other 3,999 items
                reason = self._scrub(f"{type(err).__name__}: {message(err)}")[:300]
                return Verdict(ERROR, raw=reason)
            delay = retry_after if retry_after is not None else self._backoff(key, attempt)
            if attempt >= self.max_attempts:
                return Verdict(ERROR, raw=f"{reason}; gave up after {attempt} attempts")
            if loop.time() + delay >= deadline:
                return Verdict(
                    ERROR,
                    raw=f"{reason}; gave up after {attempt} attempts "
                    f"(next retry in {delay:.1f}s would pass max_retry_time={self.max_retry_time:g}s)",
                )
            log.debug("judge %s: %s; retry %d in %.2fs", self.name, reason, attempt, delay)
            await asyncio.sleep(delay)
