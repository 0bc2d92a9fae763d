"""The audit API on Lambda, behind a function URL with AWS_IAM auth: the same app as
`eventstore serve` (eventstore.api), over this container's event store."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from consumers import runtime
from eventstore.api import build_app

logger = Logger(service=runtime.service_name())
app = build_app(runtime.event_store)  # routes only: the database opens on the first request


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
