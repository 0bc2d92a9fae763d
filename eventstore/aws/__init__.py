"""AWS adapters (boto3 lives here, never in eventstore.core): the fan-out of
infra/template.yaml created against any endpoint (`fanout`), the template reader it uses
(`template`), and a local SQS event-source mapping that runs Lambda handlers (`poller`)."""
