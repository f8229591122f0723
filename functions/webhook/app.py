"""Webhook: GitHub and Bitbucket push deliveries over the function's URL (`POST /github`, `POST /bitbucket`).

The URL is public; the HMAC signature of each delivery is its authentication. A signed push is verified,
normalized and put on EventBridge for the commit function, then answered 202; `pushdeploy.webhook` says
what every answer means.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from pushdeploy import webhook

logger = Logger()
metrics = Metrics()
app = LambdaFunctionUrlResolver()


@app.post("/github")
def github() -> Response[str]:
    return webhook.receive("github", app.current_event, app.lambda_context, metrics)


@app.post("/bitbucket")
def bitbucket() -> Response[str]:
    return webhook.receive("bitbucket", app.current_event, app.lambda_context, metrics)


@app.not_found
def not_found(_: NotFoundError) -> Response[str]:
    return webhook.unrouted(app.current_event.path, metrics)


# The event is never logged (log_event stays off): it holds the body and its signature.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
