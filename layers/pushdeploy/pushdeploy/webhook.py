"""The webhook front door: GitHub and Bitbucket push deliveries over a Lambda Function URL.

The URL is public (auth type NONE): the HMAC signature is the authentication, so nothing is read, recorded
or forwarded before it is checked. The checks run cheapest and least trusting first: body size, content
type and which provider sent it (headers only), then the signature (the current secret, or the previous
one for a bounded window after a rotation), then the body is parsed. A verified push is not deployed
here: each change goes on the stack's internal EventBridge bus (source `pushdeploy.webhook`), where only
this function's role may put events, for the commit function; the answer comes in milliseconds, 2xx only
once EventBridge has taken the changes.

Change ids derive from what was signed (provider, repository, branch, commit, push time), never from the
unsigned delivery id: a captured delivery replayed under a new delivery id is the same change and deploys
nothing new, and a push older than the freshness window (by its signed push time) is refused. A
redelivery with the same delivery id is answered from the idempotency table without forwarding again.

Never logged: a secret, a signature, a body. Refusals log the reason, provider, delivery id and source IP.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response

from pushdeploy import container
from pushdeploy.adapters.records import record_webhook_note
from pushdeploy.adapters.rules_store import RulesStore
from pushdeploy.domain.change_ids import UNDEPLOYED_CHANGE_TTL, signed_change_id
from pushdeploy.domain.changes import Change, ParsedEvent
from pushdeploy.errors import EventError, PushdeployError
from pushdeploy.sources.forwarded import ForwardedChange, forwarded_entry
from pushdeploy.sources.signatures import check_signature
from pushdeploy.sources.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Provider,
    detect_provider,
    parse_webhook,
)

# Powertools' idempotency and parameters utilities import boto3 (and s3transfer): imported on the first
# delivery, not at import, so that a cold start pays for them once it needs them (as for boto3 itself).
if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from pushdeploy.adapters.notifier import MetricsSink  # its module imports the deployment model

logger = Logger(service="pushdeploy", child=True)

MAX_BODY_BYTES = 1_048_576  # 1 MiB, after base64 decoding; GitHub caps its payloads at 25 MB
PATHS: dict[str, Provider] = {"/github": "github", "/bitbucket": "bitbucket"}
SECRET_ARN_ENV: dict[Provider, str] = {
    "github": "GITHUB_WEBHOOK_SECRET_ARN",
    "bitbucket": "BITBUCKET_WEBHOOK_SECRET_ARN",
}
SECRET_CACHE_SECONDS = 60
# After a signature fails, the secrets are read again (a rotation may have just happened), at most this
# often per provider, so that a flood of forged deliveries cannot turn into a flood of Secrets Manager calls.
SECRET_REFRESH_SECONDS = 10.0
# GitHub lets a delivery be redelivered for 3 days; Bitbucket retries within minutes.
REPLAY_WINDOW_SECONDS = 3 * 24 * 3600
_PUT_EVENTS_BATCH = 10  # PutEvents' limit of entries per call
_JSON = "application/json"


class Refused(PushdeployError):
    """A delivery answered with an error status. `message` goes to the sender: it must reveal nothing."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or message  # for the log only


class ForwardFailed(PushdeployError):
    """EventBridge did not take every change: the sender must deliver again."""


def answer(status: int, **body: Any) -> Response[str]:
    return Response(status_code=status, content_type=_JSON, body=json.dumps(body))


# --- secrets ---------------------------------------------------------------------------------------


class WebhookSecrets:
    """The values a provider's deliveries may be signed with: the secret's AWSCURRENT and, for a bounded
    time after a rotation, its AWSPREVIOUS.

    A rotation (`pushdeploy webhook rotate`) makes a new AWSCURRENT; the old value, now AWSPREVIOUS, is
    accepted only while the current version is younger than `previous_for`, so a leaked secret stops
    working once the window closes (or at once: `--revoke-previous` removes the AWSPREVIOUS stage).
    Values are read with Powertools parameters and cached `max_age` seconds, the version list too.
    """

    def __init__(
        self,
        client: SecretsManagerClient,
        arns: Mapping[Provider, str],
        previous_for: timedelta,
        max_age: int = SECRET_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: container.utc_now(),
    ) -> None:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        self._client = client
        self._current = SecretsProvider(boto3_client=client)
        self._previous = SecretsProvider(boto3_client=client)
        self._arns = arns
        self._previous_for = previous_for
        self._max_age = max_age
        self._clock = clock
        self._now = now
        self._versions: dict[str, tuple[float, datetime | None]] = {}  # arn -> (read at, previous until)
        self._refreshed_at: dict[Provider, float] = {}

    def values(self, provider: Provider, refresh: bool = False) -> list[str]:
        arn = self._arns[provider]
        current = _text(self._current.get(arn, max_age=self._max_age, force_fetch=refresh))
        until = self._previous_until(arn, refresh)
        if until is None or self._now() >= until:
            return [current]
        previous = self._previous_value(arn, refresh)
        return [current] if previous is None else [current, previous]

    def may_refresh(self, provider: Provider) -> bool:
        """True at most once per SECRET_REFRESH_SECONDS per provider."""
        now = self._clock()
        last = self._refreshed_at.get(provider)
        if last is not None and now - last < SECRET_REFRESH_SECONDS:
            return False
        self._refreshed_at[provider] = now
        return True

    def _previous_until(self, arn: str, refresh: bool) -> datetime | None:
        """Until when AWSPREVIOUS is accepted: the current version's creation plus the window; None when
        there is no AWSPREVIOUS (never rotated, or revoked)."""
        cached = self._versions.get(arn)
        if cached is not None and not refresh and self._clock() - cached[0] < self._max_age:
            return cached[1]
        versions = self._client.list_secret_version_ids(SecretId=arn)["Versions"]
        created = next(
            (v.get("CreatedDate") for v in versions if "AWSCURRENT" in v.get("VersionStages", [])), None
        )
        has_previous = any("AWSPREVIOUS" in v.get("VersionStages", []) for v in versions)
        until = created + self._previous_for if has_previous and created is not None else None
        self._versions[arn] = (self._clock(), until)
        return until

    def _previous_value(self, arn: str, refresh: bool) -> str | None:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            value = self._previous.get(
                arn, max_age=self._max_age, force_fetch=refresh, VersionStage="AWSPREVIOUS"
            )
        except GetParameterError as error:
            if not _is_not_found(error):
                raise
            return None  # revoked since the version list was read
        return _text(value)


def _text(value: str | bytes | dict[Any, Any] | None) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if not isinstance(value, str):  # a dict only comes from a transform, which is never asked for
        raise TypeError("a webhook secret is a plain string")
    return value


def _is_not_found(error: GetParameterError) -> bool:
    from botocore.exceptions import ClientError

    # Powertools wraps the SDK's error without chaining it explicitly: it is the implicit context.
    cause = error.__cause__ or error.__context__
    return isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ResourceNotFoundException"


# --- one delivery, as the Function URL hands it over -----------------------------------------------


@dataclass(frozen=True)
class Delivery:
    provider: Provider  # from the path
    headers: Mapping[str, str]  # names lower-cased
    body: bytes  # the raw bytes the sender signed
    source_ip: str | None

    @property
    def delivery_id(self) -> str | None:
        return self.headers.get(DELIVERY_HEADER[self.provider]) or None

    @property
    def event_type(self) -> str | None:
        return self.headers.get(EVENT_HEADER[self.provider])

    def log_fields(self) -> dict[str, Any]:
        return {"provider": self.provider, "delivery_id": self.delivery_id, "source_ip": self.source_ip}


def read_delivery(provider: Provider, event: LambdaFunctionUrlEvent) -> Delivery:
    """The request's body and headers, after the checks that need no secret: size and content type."""
    headers = _headers(event)
    body = _raw_body(event.get("body"), bool(event.get("isBase64Encoded")))
    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, f"body over {MAX_BODY_BYTES} bytes")
    if not _is_json(headers.get("content-type")):
        raise Refused(415, "content type must be application/json (set it in the webhook's settings)")
    return Delivery(provider, headers, body, _source_ip(event))


def _headers(event: LambdaFunctionUrlEvent) -> dict[str, str]:
    # Function URLs lower-case header names already; a test or another front end may not.
    return {name.lower(): value for name, value in (event.get("headers") or {}).items()}


def _source_ip(event: LambdaFunctionUrlEvent) -> str | None:
    http = (event.get("requestContext") or {}).get("http") or {}
    return http.get("sourceIp")


def _raw_body(body: str | None, is_base64: bool) -> bytes:
    if body is None:
        return b""
    if not is_base64:
        return body.encode()  # Lambda passes a text body as it came: UTF-8 gives back the signed bytes
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "body is not valid base64") from None


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == _JSON


def check_sender(delivery: Delivery) -> None:
    """The headers must say the same provider as the path: a GitHub delivery at /bitbucket is a mistake
    in the webhook's URL, better told plainly than answered 'invalid signature'."""
    sender = detect_provider(delivery.headers)
    if sender is None:
        header = EVENT_HEADER[delivery.provider]
        raise Refused(400, f"not a {delivery.provider} delivery: no {header} header")
    if sender != delivery.provider:
        raise Refused(400, f"a {sender} delivery was sent to /{delivery.provider}: use /{sender}")


# --- the container's state -------------------------------------------------------------------------


@dataclass
class _State:
    secrets: WebhookSecrets
    rules: RulesStore
    dynamodb: DynamoDBClient
    ledger_table: str  # the webhook writes only its notes there (`record_webhook_note`)
    events: EventBridgeClient
    bus: str
    once: Callable[..., dict[str, Any]]
    idempotency_config: IdempotencyConfig
    max_age: timedelta  # a delivery pushed longer ago than this is refused as stale


_state: _State | None = None


def _container() -> _State:
    """Made on the first delivery (never at import: a cold start pays only for what it uses)."""
    global _state
    if _state is None:
        _state = _make_state()
    return _state


def forget_container() -> None:
    """Drop the container's state, as a new container would start (`container.reset()` does it too)."""
    global _state
    _state = None


container.on_reset(forget_container)


def _make_state() -> _State:
    dynamodb = cast("DynamoDBClient", container.client("dynamodb"))
    arns: dict[Provider, str] = {p: _env(name) for p, name in SECRET_ARN_ENV.items()}
    once, config = _idempotent_forward(dynamodb)
    return _State(
        secrets=WebhookSecrets(
            cast("SecretsManagerClient", container.client("secretsmanager")),
            arns,
            previous_for=timedelta(hours=float(_env("PREVIOUS_SECRET_HOURS", "24"))),
        ),
        rules=RulesStore(
            dynamodb, _env("RULES_TABLE"), cache_seconds=float(_env("RULES_CACHE_SECONDS", "30"))
        ),
        dynamodb=dynamodb,
        ledger_table=_env("LEDGER_TABLE"),
        events=cast("EventBridgeClient", container.client("events")),
        bus=_env("FORWARD_BUS_NAME"),  # the stack's internal bus: only this function may put events there
        once=once,
        idempotency_config=config,
        max_age=timedelta(hours=float(_env("WEBHOOK_MAX_AGE_HOURS", "72"))),
    )


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise RuntimeError(f"environment variable {name} is not set")
    return value


def _idempotent_forward(
    dynamodb: DynamoDBClient,
) -> tuple[Callable[..., dict[str, Any]], IdempotencyConfig]:
    """`_forward_changes` at most once per (provider, delivery id); a replay gets the first answer back."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    persistence = DynamoDBPersistenceLayer(table_name=_env("IDEMPOTENCY_TABLE"), boto3_client=dynamodb)
    config = IdempotencyConfig(
        # The signed change ids too: another push sent under a used delivery id is not a replay.
        event_key_jmespath="[provider, delivery_id, changes]",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=REPLAY_WINDOW_SECONDS,
        response_hook=_mark_replay,
    )
    once = idempotent_function(data_keyword_argument="key", persistence_store=persistence, config=config)
    return cast("Callable[..., dict[str, Any]]", once(_forward_changes)), config


def _mark_replay(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, "replayed": True} if isinstance(response, dict) else response


# --- answering -------------------------------------------------------------------------------------


def receive(
    provider: Provider,
    event: LambdaFunctionUrlEvent,
    context: LambdaContext,
    metrics: MetricsSink | None = None,
) -> Response[str]:
    """One POST to /github or /bitbucket, answered; never raises."""
    try:
        return _receive(provider, event, context, metrics)
    except Exception as error:  # Secrets Manager or DynamoDB unavailable...: 500, the sender may retry
        logger.exception("webhook failed", extra={"provider": provider, "error_type": type(error).__name__})
        _count(metrics, "WebhookFailed")
        return answer(500, message="internal error: deliver again later")


def _count(metrics: MetricsSink | None, name: str, value: float = 1) -> None:
    if metrics is not None:
        metrics.add_metric(name=name, unit="Count", value=value)


def _receive(
    provider: Provider,
    event: LambdaFunctionUrlEvent,
    context: LambdaContext,
    metrics: MetricsSink | None,
) -> Response[str]:
    try:
        delivery = read_delivery(provider, event)
        check_sender(delivery)
        state = _container()
        verify(state.secrets, delivery)
        parsed = _parse(delivery)
    except Refused as refused:
        return _refusal(refused, provider, event, metrics)
    if parsed.changes:
        return _accept_once(state, delivery, parsed, context, metrics)
    logger.info("delivery ignored", extra={**delivery.log_fields(), "reason": parsed.ignored})
    _count(metrics, "WebhookIgnored")
    if delivery.event_type == "ping":  # GitHub's hello when a hook is created: all is well
        return answer(200, message="pong")
    return answer(202, message="ignored", ignored=parsed.ignored)


def _refusal(
    refused: Refused, provider: Provider, event: LambdaFunctionUrlEvent, metrics: MetricsSink | None
) -> Response[str]:
    headers = _headers(event)
    fields = {
        "provider": provider,
        "delivery_id": headers.get(DELIVERY_HEADER[provider]),
        "source_ip": _source_ip(event),
        "status": refused.status,
        "reason": refused.reason,
    }
    logger.warning("delivery refused", extra=fields)
    _count(metrics, "WebhookRefused")
    if refused.status == 401:  # worth an alarm: a wrong secret in the hook's settings, or a forger
        _count(metrics, "WebhookSignatureRefused")
    return answer(refused.status, message=refused.message)


def verify(secrets: WebhookSecrets, delivery: Delivery) -> None:
    """Refuse (401) unless the body is signed with the current or the previous secret."""
    header = delivery.headers.get(SIGNATURE_HEADER[delivery.provider])
    state = check_signature(delivery.body, header, secrets.values(delivery.provider))
    if state == "invalid" and secrets.may_refresh(delivery.provider):
        # Signed with a secret rotated since this container cached it? Read the secrets again.
        state = check_signature(delivery.body, header, secrets.values(delivery.provider, refresh=True))
    if state != "valid":
        raise Refused(401, "invalid signature", reason=f"signature {state}")


def _parse(delivery: Delivery) -> ParsedEvent:
    try:
        parsed = parse_webhook(delivery.body, delivery.headers)
    except EventError as error:
        raise Refused(400, str(error)) from None
    if parsed.changes and not delivery.delivery_id:
        header = DELIVERY_HEADER[delivery.provider]
        raise Refused(400, f"no {header} header: a push must carry its delivery id")
    return parsed


def _accept_once(
    state: _State,
    delivery: Delivery,
    parsed: ParsedEvent,
    context: LambdaContext,
    metrics: MetricsSink | None,
) -> Response[str]:
    """Forward the fresh changes some rule watches (once per delivery id); record the others with why."""
    ids = [signed_change_id(change) for change in parsed.changes]
    watched, notes, stale = _sort_out(state, delivery, parsed.changes, ids)
    if not watched:
        # Not remembered as a replay: after a rule is added, redelivering this push must deploy it.
        logger.info("nothing to forward", extra={**delivery.log_fields(), "changes": ids, "notes": notes})
        if stale == len(ids):
            _count(metrics, "WebhookStale")
            return answer(422, message=notes[0], changes=ids, forwarded=0)
        _count(metrics, "WebhookUnwatched")
        return answer(202, message=notes[0], changes=ids, forwarded=0)
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    try:
        outcome = _forward_once(state, delivery, watched, context)
    except IdempotencyAlreadyInProgressError:
        # The first copy is being handled right now; if it fails, its sender is told to deliver again.
        _count(metrics, "WebhookRefused")
        return answer(409, message="this delivery is already being processed")
    except ForwardFailed as failed:
        logger.error("changes not forwarded", extra={**delivery.log_fields(), "error": str(failed)})
        _count(metrics, "WebhookFailed")
        return answer(500, message="could not hand the changes over: deliver again")
    replayed = bool(outcome.get("replayed"))
    logger.info("delivery accepted", extra={**delivery.log_fields(), "changes": ids, "replayed": replayed})
    _count(metrics, "WebhookReplayed" if replayed else "WebhookAccepted")
    message = f"forwarded {len(watched)} of {len(ids)} changes"
    extra = {"replayed": True} if replayed else {}
    return answer(202, message=message, changes=ids, forwarded=len(watched), **extra)


def _sort_out(
    state: _State, delivery: Delivery, changes: Sequence[Change], ids: Sequence[str]
) -> tuple[list[ForwardedChange], list[str], int]:
    """The changes to forward; the notes of the others (recorded in the ledger); how many were stale."""
    delivery_id = delivery.delivery_id or ""  # never empty here: `_parse` refuses a push without one
    watched: list[ForwardedChange] = []
    notes: list[str] = []
    stale = 0
    for position, change in enumerate(changes):
        too_old = _staleness(change, state.max_age)
        if too_old is not None:
            stale += 1
            notes.append(_record_note(state, change, ids[position], delivery_id, too_old))
        elif state.rules.watches(change):
            watched.append(ForwardedChange.of(change, delivery_id, delivery.provider, position))
        else:
            note = f"no rule watches {change.source} {change.repository}"
            notes.append(_record_note(state, change, ids[position], delivery_id, note))
    return watched, notes, stale


def _staleness(change: Change, max_age: timedelta) -> str | None:
    """Why a push is too old to deploy (a captured delivery replayed later), by its signed push time."""
    if change.pushed_at is None:
        return None  # nothing signed says when: the order of pushes still keeps an old one out
    age = container.utc_now() - change.pushed_at
    if age <= max_age:
        return None
    hours = int(max_age.total_seconds() // 3600)
    return (
        f"refused: pushed at {change.pushed_at.strftime('%Y-%m-%dT%H:%M:%SZ')}, more than {hours} h ago "
        "(a stale or replayed delivery); push again to deploy"
    )


def _forward_once(
    state: _State, delivery: Delivery, changes: Sequence[ForwardedChange], context: LambdaContext
) -> dict[str, Any]:
    state.idempotency_config.register_lambda_context(context)  # in-progress records end with the call
    key = {
        "provider": delivery.provider,
        "delivery_id": delivery.delivery_id,
        "changes": [signed_change_id(forwarded.change) for forwarded in changes],
    }
    return state.once(key=key, changes=changes, events=state.events, bus=state.bus)


def _forward_changes(
    key: dict[str, str], changes: Sequence[ForwardedChange], events: EventBridgeClient, bus: str
) -> dict[str, Any]:
    """What runs once per (provider, delivery id); its answer is kept for replays."""
    forward(events, bus, changes)
    return {"forwarded": len(changes)}


def _record_note(state: _State, change: Change, change_id: str, delivery_id: str, note: str) -> str:
    now = container.utc_now()
    expires = int((now + UNDEPLOYED_CHANGE_TTL).timestamp())
    attributes: dict[str, Any] = {
        "change": change.model_dump(),
        "pushed_at": change.pushed_at,
        "decisions": [],
        "note": note,
        "event_id": delivery_id,
        "received_at": now,
    }
    record_webhook_note(state.dynamodb, state.ledger_table, change_id, attributes, expires)
    return note


def forward(events: EventBridgeClient, bus: str, changes: Sequence[ForwardedChange]) -> None:
    """PutEvents, 10 entries a call; raise ForwardFailed unless EventBridge took them all."""
    entries = [forwarded_entry(change, bus) for change in changes]
    for start in range(0, len(entries), _PUT_EVENTS_BATCH):
        batch = entries[start : start + _PUT_EVENTS_BATCH]
        result = events.put_events(Entries=batch)  # type: ignore[arg-type]
        if result.get("FailedEntryCount"):
            codes = sorted({entry["ErrorCode"] for entry in result["Entries"] if "ErrorCode" in entry})
            raise ForwardFailed(f"EventBridge refused {result['FailedEntryCount']} entries: {codes}")


def unrouted(path: str, metrics: MetricsSink | None = None) -> Response[str]:
    """No route: a known path asked with another method is 405, anything else 404."""
    _count(metrics, "WebhookRefused")
    if path in PATHS:
        return Response(
            status_code=405,
            content_type=_JSON,
            body=json.dumps({"message": "method not allowed: deliveries are POSTed"}),
            headers={"Allow": "POST"},
        )
    return answer(404, message="not found: deliveries go to /github or /bitbucket")
