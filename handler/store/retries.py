"""One retry policy per S3 client, shared by its two roads (lean.py's short road and botocore's).

Why not botocore's standard retry mode as it comes: its retry quota (500 units a client, 5 taken by each
throttled retry, 14 by any other, given back 1 only by a call that botocore itself answered on its first
attempt) is a circuit breaker for outages. Here it breaks the run instead:

- The short road sends every first attempt of the hot requests, so almost nothing gives the quota back; once it
  is empty a throttled request gets one attempt on each road, 49 ms apart, and its object fails.
- Even on botocore's road alone a sustained storm empties it: with a share p of answers throttled, a call
  costs 5 p^2 / (1 - p) units on average (its retries after the first; the one taken last is given back) and
  gives 1 - p back, so it drains at 40 % (0.73 units a call: empty after about 700 calls) and at 50 % (2 units
  a call: after 250), and stays empty while the storm lasts.
- A warm Lambda container keeps its client (lambda_function.py), so the next invocation starts drained.

A copy run's load is closed-loop: `concurrency` workers, each waiting for its answer. Retries with backoff
lower the request rate instead of adding to it, so the quota's protection is not needed, and it is left out
(the issue's measurement: 0 failed with an unlimited quota or legacy mode, 33-64 of 600 with it). What is
kept is botocore's own judgement, shared by both roads:

- which answers are retried (`StandardRetryConditions`: 500, 502, 503, 504, 429, the throttling codes, the
  transient ones, connection errors) and which are throttling (`ThrottlingErrorDetector`, plus every S3 503:
  S3's two 503 codes, SlowDown and ServiceUnavailable, both mean "reduce your request rate", and a HEAD's 503
  has no body to name its code; https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html);
- the delay before each retry (`ExponentialBackoff`: full jitter, 1 s base for throttling and 50 ms for other
  errors, doubling per attempt, 20 s cap, `x-amz-retry-after` honoured);
- AWS_MAX_ATTEMPTS, counted across both roads: when the short road declines a call after k attempts (an answer
  only botocore can read: a redirect, a 403, a cut body, a reset), botocore's road gets what is left of the
  attempts (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html: attempts per request,
  the first included). botocore always sends once, so a call whose last allowed attempt on the short road got
  such an answer has one more;
- with AWS_RETRY_MODE=adaptive, botocore's client-side rate limiter (`ClientRateLimiter`): one for the client,
  its token taken before every attempt on either road and fed every answer from either road.

So a throttled request waits longer each time and fails only after its last attempt, with botocore's
ClientError (MaxAttemptsReached, and `TotalAttempts` in its ResponseMetadata), which errors.py turns into
`Throttled` naming the attempts. Each policy counts what it saw (`Counts`); `report` reads it.
"""

from __future__ import annotations

import inspect
import logging
import random
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ProxyConnectionError
from botocore.retries import adaptive, bucket, standard, throttling

log = logging.getLogger(__name__)

MODES = ("standard", "adaptive", "legacy")
"""AWS_RETRY_MODE values; `legacy` is taken as `standard` (both roads follow one policy, botocore's standard)."""

TOTAL_ATTEMPTS = "TotalAttempts"
"""The key in a final answer's ResponseMetadata that holds the attempts the call had on both roads."""

LOG_EVERY = 60.0
"""Seconds: while requests are being retried, a line at most this often says how many (a step's or run's end says
it again for the whole; see `log_report`)."""

UNREACHABLE_EVERY = 5.0
"""Seconds: while the endpoint cannot be reached, a line at most this often says so and that it is retrying (the
first one at the first failure), so a wrong --endpoint-url or a server that is down is not a minute of silence."""
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)
"""Errors that mean no answer came at all: no connection (refused, unresolvable, timed out)."""

_RETRY_HANDLER_ID = "retry-config-{service}"  # the unique_id botocore registers its retry handler under
_CARRIED = "ingest_carried_attempts"  # in a botocore request's context: attempts it had on the short road


class _S3ThrottlingDetector(standard.ThrottlingErrorDetector):
    """botocore's throttling detection, and every 503 (S3's 503s all ask for a lower request rate)."""

    def is_throttling_error_from_context(self, context: standard.RetryContext) -> bool:
        if super().is_throttling_error_from_context(context):
            return True
        response = context.http_response
        return response is not None and response.status_code == 503


@dataclass
class Counts:
    """What a client's requests met, on both roads, since the client was made."""

    calls: int = 0
    """Requests made (a request and its retries are one)."""
    attempts: int = 0
    """Attempts sent, first ones and retries."""
    retries: int = 0
    throttled: int = 0
    """Answers that were throttling (503, 429, SlowDown, ...)."""
    gave_up: int = 0
    """Requests that were still answered with a retryable error at their last attempt."""
    most_attempts: int = 0
    """The most attempts one request had."""
    backoff_seconds: float = 0.0
    """Time slept before retries."""
    rate_limited_seconds: float = 0.0
    """Time waited for the adaptive mode's send tokens."""

    def minus(self, earlier: Counts) -> Counts:
        """What happened since `earlier` (`most_attempts` is the whole client's)."""
        delta = {k: v - getattr(earlier, k) for k, v in asdict(self).items() if k != "most_attempts"}
        return Counts(**delta, most_attempts=self.most_attempts)


class Policy:
    """The retry decisions of one client, for both roads. Thread-safe: a run's workers share one client."""

    def __init__(
        self,
        max_attempts: int,
        *,
        adaptive_mode: bool = False,
        clock: bucket.Clock | None = None,
    ):
        self.max_attempts = max_attempts
        self._adapter = standard.RetryEventAdapter()
        self._throttling = _S3ThrottlingDetector(self._adapter)
        # botocore's classification, without its attempt count (ours spans both roads): no request reaches this.
        self._retryable = standard.StandardRetryConditions(max_attempts=sys.maxsize)
        # time.sleep and random.random are looked up at each use, so a test or a measurement can replace them.
        self._backoff = _backoff(lambda: random.random(), self._throttling)
        self.limiter = _limiter(self._throttling, clock or bucket.Clock()) if adaptive_mode else None
        self._counts = Counts()
        self._lock = threading.Lock()
        self._logged = (time.monotonic(), Counts())  # when the last periodic line was logged, and the counts then
        self._unreachable_said = -UNREACHABLE_EVERY  # when an unreachable endpoint was last reported
        self._carry = threading.local()

    # -- what both roads ask -----------------------------------------------------------------------------

    def before_send(self, **_: Any) -> None:
        """Before every attempt on either road: with adaptive mode, wait for a send token."""
        if self.limiter is None:
            return
        started = time.monotonic()
        self.limiter.on_sending_request(request=None)
        waited = time.monotonic() - started
        if waited > 0.001:
            with self._lock:
                self._counts.rate_limited_seconds += waited

    def decide(self, context: standard.RetryContext, needs_retry_kwargs: Mapping[str, Any]) -> float | None:
        """After attempt `context.attempt_number` (counted across both roads): the delay before the next one,
        or None when the answer is final (not retryable, or the attempts are spent: then marked as botocore marks
        it). Counts the attempt and feeds the adaptive limiter."""
        if self.limiter is not None:
            self.limiter.on_receiving_response(**needs_retry_kwargs)
        throttled = self._throttling.is_throttling_error_from_context(context)
        # Classified on a copy: botocore's max-attempts check writes its maximum into the request's retries
        # context (the amz-sdk-request header), and ours is not sys.maxsize.
        retryable = self._retryable.is_retryable(
            standard.RetryContext(
                attempt_number=1,
                operation_model=context.operation_model,
                parsed_response=context.parsed_response,
                http_response=context.http_response,
                caught_exception=context.caught_exception,
            )
        )
        attempt = context.attempt_number
        delay = None
        if retryable and attempt < self.max_attempts:
            delay = self._backoff.delay_amount(context)
        elif retryable:
            context.add_retry_metadata(MaxAttemptsReached=True)
        if delay is None:
            context.add_retry_metadata(**{TOTAL_ATTEMPTS: attempt})
        with self._lock:
            counts = self._counts
            counts.attempts += 1
            counts.calls += attempt == 1
            counts.retries += attempt > 1
            counts.throttled += throttled
            counts.gave_up += retryable and delay is None
            counts.most_attempts = max(counts.most_attempts, attempt)
            counts.backoff_seconds += delay or 0.0
            since, logged = self._logged
            now = time.monotonic()
            due = delay is not None and now - since >= LOG_EVERY
            if due:
                self._logged = (now, Counts(**asdict(counts)))
        if due:
            _log_counts(f"S3 retries in the last {now - since:.0f} s", self.counts().minus(logged), self.max_attempts)
        if delay is not None and isinstance(context.caught_exception, _UNREACHABLE):
            self._say_unreachable(context.caught_exception, attempt)
        return delay

    def _say_unreachable(self, error: BaseException, attempt: int) -> None:
        """The endpoint did not answer and the call is retried: say so now, as aws-cli's debug log and rclone's
        "low level retry 1/10" do, instead of after every attempt has failed (at most every UNREACHABLE_EVERY s)."""
        now = time.monotonic()
        with self._lock:
            if now - self._unreachable_said < UNREACHABLE_EVERY:
                return
            self._unreachable_said = now
        log.warning("S3 endpoint not reachable (%s); retrying (attempt %d/%d)", error, attempt + 1, self.max_attempts)

    def count(self, attempt: int) -> None:
        """An attempt on the short road that needs no decision: a success, or one without an answer (a reset, a
        timeout: botocore's road, where the call goes next, decides about that)."""
        with self._lock:
            self._counts.attempts += 1
            self._counts.calls += attempt == 1
            self._counts.retries += attempt > 1
            self._counts.most_attempts = max(self._counts.most_attempts, attempt)

    def wait(self, delay: float) -> None:
        time.sleep(delay)

    def context(
        self,
        attempt: int,
        operation_model: Any,
        status: int,
        headers: Any,
        parsed: dict[str, Any] | None,
    ) -> tuple[standard.RetryContext, dict[str, Any]]:
        """A short-road answer as botocore's retry code sees one (and the needs-retry arguments it came from)."""
        kwargs = {
            "response": (_Answer(status, headers), parsed or {}),
            "attempts": attempt,
            "operation": operation_model,
            "caught_exception": None,
            "request_dict": {"context": {}},
        }
        return self._adapter.create_retry_context(**kwargs), kwargs

    def counts(self) -> Counts:
        with self._lock:
            return Counts(**asdict(self._counts))

    # -- attempts carried from the short road to botocore's ------------------------------------------------

    def carry(self, attempts: int) -> None:
        """The short road declined a call after `attempts`: the next botocore request on this thread (the same
        call, made again) has only the rest."""
        self._carry.attempts = attempts

    def drop_carry(self) -> None:
        self._carry.attempts = 0

    def _take_carry(self) -> int:
        attempts = getattr(self._carry, "attempts", 0)
        self._carry.attempts = 0
        return attempts

    # -- botocore's road -----------------------------------------------------------------------------------

    def needs_retry(self, **kwargs: Any) -> float | None:
        """botocore's `needs-retry` handler, in place of its own: the same decision as on the short road."""
        request_context = kwargs["request_dict"]["context"]
        carried = request_context.get(_CARRIED)
        if carried is None:
            carried = request_context[_CARRIED] = self._take_carry()
        total = dict(kwargs, attempts=kwargs["attempts"] + carried)
        context = self._adapter.create_retry_context(**total)
        delay = self.decide(context, kwargs)
        self._adapter.adapt_retry_response_from_context(context)
        return delay  # botocore sleeps it (time.sleep) and sends again; None: this answer is the call's


class _Answer:
    """The part of botocore's AWSResponse its retry code reads."""

    __slots__ = ("status_code", "headers")

    def __init__(self, status_code: int, headers: Any):
        self.status_code = status_code
        self.headers = headers


def _backoff(rand: Callable[[], float], detector: standard.ThrottlingErrorDetector) -> standard.ExponentialBackoff:
    """botocore's ExponentialBackoff, told which answers are throttling where its release takes it (1.42+)."""
    accepted = inspect.signature(standard.ExponentialBackoff).parameters
    kwargs: dict[str, Any] = {"max_backoff": 20, "random": rand}
    if "throttling_detector" in accepted:
        kwargs["throttling_detector"] = detector
    if "service_name" in accepted:
        kwargs["service_name"] = "s3"
    return standard.ExponentialBackoff(**kwargs)


def _limiter(detector: standard.ThrottlingErrorDetector, clock: bucket.Clock) -> adaptive.ClientRateLimiter:
    """The limiter botocore's adaptive mode builds (adaptive.register_retry_handler), built here so that both
    roads use it and it is not registered as a `before-send` handler (which closes the short road)."""
    return adaptive.ClientRateLimiter(
        rate_adjustor=throttling.CubicCalculator(starting_max_rate=0, start_time=clock.current_time()),
        rate_clocker=adaptive.RateClocker(clock),
        token_bucket=bucket.TokenBucket(max_rate=1, clock=clock),
        throttling_detector=detector,
        clock=clock,
    )


# -- which client has which policy -------------------------------------------------------------------------

_policies: weakref.WeakKeyDictionary[Any, Policy] = weakref.WeakKeyDictionary()


def install(client: Any, *, adaptive_mode: bool = False, **options: Any) -> Policy:
    """Give the client (made in botocore's standard mode) this module's policy on botocore's road, in place of
    botocore's handler; returns it. A client that already has one keeps it."""
    existing = _policies.get(client)
    if existing is not None:
        return existing
    max_attempts = client.meta.config.retries.get("total_max_attempts") or standard.DEFAULT_MAX_ATTEMPTS
    policy = Policy(max_attempts, adaptive_mode=adaptive_mode, **options)
    service = client.meta.service_model.service_id.hyphenize()
    unique_id = _RETRY_HANDLER_ID.format(service=service)
    events = client.meta.events
    events.unregister(f"needs-retry.{service}", unique_id=unique_id)
    events.register(f"needs-retry.{service}", policy.needs_retry, unique_id=unique_id)
    if policy.limiter is not None:
        events.register(f"before-send.{service}", policy.before_send)
    _policies[client] = policy
    return policy


def policy_of(client: Any) -> Policy | None:
    try:
        return _policies.get(client)
    except TypeError:  # a client that cannot be weakly referenced (a test double)
        return None


def report(client: Any, since: Counts | None = None) -> Counts | None:
    """What the client's requests met (since `since`, a earlier report), or None for a client without a policy."""
    policy = policy_of(client)
    if policy is None:
        return None
    counts = policy.counts()
    return counts.minus(since) if since is not None else counts


def log_report(client: Any, what: str, since: Counts | None = None) -> None:
    """One log line when requests were retried (nothing when none were): how many, why, and the most one had."""
    counts = report(client, since)
    policy = policy_of(client)
    if counts is not None and policy is not None:
        _log_counts(what, counts, policy.max_attempts)


def _log_counts(what: str, counts: Counts, max_attempts: int) -> None:
    if not counts.retries:
        return
    log.warning(
        "%s: %d S3 requests took %d attempts (%d retries, %d answers throttled, backoff %.1f s, rate-limited "
        "%.1f s); the most for one request: %d of %d; %d gave up after their last attempt",
        what,
        counts.calls,
        counts.attempts,
        counts.retries,
        counts.throttled,
        counts.backoff_seconds,
        counts.rate_limited_seconds,
        counts.most_attempts,
        max_attempts,
        counts.gave_up,
    )
