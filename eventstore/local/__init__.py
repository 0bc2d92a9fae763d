"""The fan-out on this machine, for the demo and the end-to-end tests: infra/template.yaml
read (`template`) and created with boto3 against any endpoint (`fanout`), moto's server
embedded (`embedded`), a local SQS event-source mapping that runs the Lambda handlers
(`poller`), and the template's reactor wiring checked against the registry (`reactors`).

Nothing on the Lambda handlers' path imports it. The production AWS adapters live with what
they serve: `consumers/` (the handlers), `eventstore/replay/aws.py` (history sources) and
`eventstore/reactors/aws.py` (a reactor's S3 and SQS)."""
