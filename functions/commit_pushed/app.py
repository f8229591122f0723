"""Commit pushed: a `CodeCommit Repository State Change` for a branch, or a GitHub or Bitbucket push that
the webhook function verified and forwarded (source `pushdeploy.webhook`).

Decides for every rule that watches the repository, starts what must deploy, records it all.

A redelivered event (EventBridge delivers at least once; Lambda retries) is a no-op without any
idempotency table: each change is known by its change id (a CodeCommit change by the event id and its
position in the event, a webhook push by what its sender signed), and the controller reads that change's
record first and answers from it. Two deliveries at once meet in the admission transaction (the
deployment, whose id comes from the change id, is written only if new) and the change's record is a
conditional put, written once.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from pushdeploy import runtime

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return runtime.process_push(event, metrics)
