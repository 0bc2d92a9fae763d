"""Reading CloudFormation YAML with short-form tags, and resolving its intrinsic functions."""

from pathlib import Path

import pytest

from eventstore.local.template import NO_VALUE, Resolver, TemplateError, load_template

TEMPLATE = """
Parameters:
  Name: {Type: String}
  Timeout: {Type: Number, Default: 30, AllowedValues: [30, 60]}
  Subnets: {Type: CommaDelimitedList, Default: ""}
Mappings:
  Visibility: {"30": {Seconds: 180}, "60": {Seconds: 360}}
Conditions:
  InVpc: !Not [!Equals [!Join ["", !Ref Subnets], ""]]
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-${Name}"
      VisibilityTimeout: !FindInMap [Visibility, !Ref Timeout, Seconds]
      Vpc: !If [InVpc, yes, !Ref AWS::NoValue]
      Arn: !GetAtt Other.Arn
      Literal: !Sub "${!NotAVariable}"
"""


@pytest.fixture
def resolver(tmp_path: Path) -> Resolver:
    path = tmp_path / "t.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    template = load_template(path)
    return Resolver.for_template(
        template, {"Name": "q"}, stack_name="s", region="eu-west-1", account_id="111"
    )


def test_short_form_tags_become_long_form(resolver: Resolver) -> None:
    props = resolver.template["Resources"]["Queue"]["Properties"]
    assert props["QueueName"] == {"Fn::Sub": "${AWS::StackName}-${Name}"}
    assert props["Arn"] == {"Fn::GetAtt": ["Other", "Arn"]}


def test_intrinsics_resolve_against_parameters_pseudo_and_created_resources(
    resolver: Resolver,
) -> None:
    resolver.attributes["Other"] = {"Arn": "arn:x"}
    props = resolver.resolve(resolver.template["Resources"]["Queue"]["Properties"])
    assert props == {
        "QueueName": "s-q",
        "VisibilityTimeout": 180,
        "Arn": "arn:x",
        "Literal": "${NotAVariable}",
    }  # Vpc dropped: AWS::NoValue when the condition is false


def test_references_to_uncreated_resources_and_bad_parameters_fail(resolver: Resolver) -> None:
    with pytest.raises(TemplateError):
        resolver.resolve({"Fn::GetAtt": ["Other", "Arn"]})
    with pytest.raises(TemplateError):
        Resolver.for_template(resolver.template, {"Timeout": "45", "Name": "q"},
                              stack_name="s", region="r", account_id="1")  # fmt: skip
    with pytest.raises(TemplateError):
        Resolver.for_template(resolver.template, {}, stack_name="s", region="r", account_id="1")
    assert resolver.ref("AWS::NoValue") is NO_VALUE


def test_the_projects_template_loads() -> None:
    template = load_template()
    assert template["Resources"]["IngestFunction"]["Properties"]["Handler"] == (
        "consumers.ingest.handler"
    )
