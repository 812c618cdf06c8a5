"""Parsing: block addresses and line ranges, attribute lines, values, references, syntax errors."""

from __future__ import annotations

import textwrap
import time

import pytest

from opsmith.review.hcl import Expr, HclList, HclObject, is_literal, parse_text

SOURCE = textwrap.dedent(
    """\
    variable "region" {
      type    = string
      default = "eu-west-1"
    }

    resource "aws_s3_bucket" "logs" {
      bucket = "acme-logs"
      acl    = "public-read"
      tags = {
        Env = "prod"
      }
      server_side_encryption_configuration {
        rule {
          apply_server_side_encryption_by_default {
            sse_algorithm = "AES256"
          }
        }
      }
    }

    locals {
      a = var.region
      b = "${var.prefix}-x"
    }

    module "vpc" {
      source = "./vpc"
    }

    data "aws_iam_policy_document" "x" {
      statement {
        actions = ["*"]
      }
    }

    output "bucket" {
      value = aws_s3_bucket.logs.id
    }

    provider "aws" {
      alias  = "west"
      region = "us-west-2"
    }
    """
)


def test_blocks_have_addresses_and_line_ranges() -> None:
    tf = parse_text(SOURCE, name="main.tf")
    assert tf.problem is None
    assert [(b.address, b.line, b.end_line) for b in tf.blocks] == [
        ("variable.region", 1, 4),
        ("aws_s3_bucket.logs", 6, 19),
        ("locals", 21, 24),
        ("module.vpc", 26, 28),
        ("data.aws_iam_policy_document.x", 30, 34),
        ("output.bucket", 36, 38),
        ("provider.aws.west", 40, 43),
    ]


def test_attributes_and_nested_blocks_keep_their_lines() -> None:
    tf = parse_text(SOURCE, name="main.tf")
    bucket = tf.blocks[1]
    acl = bucket.attr("acl")
    assert acl is not None
    assert (acl.line, acl.end_line, acl.value) == (8, 8, "public-read")
    tags = bucket.attr("tags")
    assert tags is not None
    assert (tags.line, tags.end_line) == (9, 11)
    assert isinstance(tags.value, HclObject)
    assert tags.value == {"Env": "prod"}
    assert tags.value.key_lines == {"Env": 10}
    sse = bucket.child("server_side_encryption_configuration")
    assert sse is not None
    assert (sse.line, sse.end_line) == (12, 18)
    inner = sse.walk()
    assert [b.type for b in inner] == [
        "server_side_encryption_configuration",
        "rule",
        "apply_server_side_encryption_by_default",
    ]
    assert sse.address == "aws_s3_bucket.logs"  # nested blocks report their resource
    assert bucket.enclosing(15).type == "apply_server_side_encryption_by_default"


def test_locals_findings_map_to_the_local_value() -> None:
    tf = parse_text(SOURCE, name="main.tf")
    block = tf.block_at(23)
    assert block is not None
    assert block.address_at(23) == "local.b"
    assert tf.block_at(5) is None


def test_values_are_plain_python_and_expressions_keep_their_text() -> None:
    tf = parse_text(
        textwrap.dedent(
            """\
            resource "x_y" "z" {
              a = true
              b = 10
              c = null
              d = -1.5
              e = ["0.0.0.0/0", var.cidr]
              f = jsonencode({ Action = "*" })
              g = var.env == "prod" ? "m5.large" : "t3.micro"
              h = "a\\"b"
              i = <<-EOT
                line one
                line two
              EOT
              j = "${var.name}-logs"
            }
            """
        ),
        name="v.tf",
    )
    values = {name: a.value for name, a in tf.blocks[0].attributes.items()}
    assert values["a"] is True
    assert values["b"] == 10
    assert values["c"] is None
    assert values["d"] == -1.5
    assert isinstance(values["e"], HclList)
    assert values["e"][0] == "0.0.0.0/0"
    assert values["e"][1] == Expr("var.cidr")
    assert isinstance(values["f"], Expr)
    assert values["f"].call == "jsonencode"
    assert values["f"].args == ({"Action": "*"},)
    assert isinstance(values["g"], Expr)
    assert values["g"].text.startswith("var.env ==")
    assert values["h"] == 'a"b'
    assert values["i"] == "line one\nline two\n"
    assert values["j"] == "${var.name}-logs"
    assert not is_literal(values["j"])
    heredoc = tf.blocks[0].attr("i")
    assert heredoc is not None
    assert (heredoc.line, heredoc.end_line) == (10, 13)


def test_references_skip_iterators_and_builtins() -> None:
    tf = parse_text(
        textwrap.dedent(
            """\
            resource "aws_instance" "web" {
              count     = length(var.azs)
              subnet_id = aws_subnet.private[count.index].id
              ami       = data.aws_ami.base.id
              tags      = { for k, v in local.tags : k => v.value }
              ids       = [for s in module.net.subnets : s.id]
              path      = "${path.module}/${each.key}/${self.id}"
              dynamic "ebs_block_device" {
                for_each = var.disks
                iterator = disk_item
                content {
                  device_name = disk_item.value
                  volume_size = ebs_block_device.value
                }
              }
            }
            """
        ),
        name="r.tf",
    )
    block = tf.blocks[0]
    refs = {ref.address for b in block.walk() for a in b.attributes.values() for ref in a.refs}
    assert refs == {"var.azs", "aws_subnet.private", "data.aws_ami.base", "local.tags", "module.net", "var.disks"}
    subnet = block.attr("subnet_id")
    assert subnet is not None
    assert [r.line for r in subnet.refs] == [3]


def test_duplicate_arguments_are_recorded() -> None:
    tf = parse_text('resource "a_b" "c" {\n  x = 1\n  x = 2\n}\n', name="d.tf")
    assert tf.blocks[0].duplicate_attributes == [("x", 3)]


def test_syntax_error_reports_the_parser_line() -> None:
    tf = parse_text('resource "a_b" "c" {\n  name = "x"\n  size =\n}\n', name="bad.tf")
    assert tf.problem is not None
    assert tf.problem.line == 3
    assert tf.problem.message.startswith("HCL syntax error at line 3")
    assert tf.blocks == []


def test_unclosed_block_points_at_the_end_of_the_file() -> None:
    tf = parse_text('resource "a_b" "c" {\n  name = "x"\n', name="bad.tf")
    assert tf.problem is not None
    assert tf.problem.line == 2
    assert "end of file" in tf.problem.message


def test_empty_and_comment_only_files_parse() -> None:
    assert parse_text("", name="e.tf").blocks == []
    assert parse_text("# nothing here\n", name="c.tf").problem is None


def test_a_large_file_parses_in_reasonable_time() -> None:
    text = "".join(f'resource "aws_sqs_queue" "q{i}" {{\n  name = "q{i}"\n}}\n' for i in range(2000))
    start = time.perf_counter()
    tf = parse_text(text, name="big.tf")
    assert time.perf_counter() - start < 10
    assert len(tf.blocks) == 2000
    assert (tf.blocks[-1].address, tf.blocks[-1].line) == ("aws_sqs_queue.q1999", 5998)


DEEP = 800  # python-hcl2 parses it; walking the tree recursively used to raise RecursionError


@pytest.mark.parametrize(
    "text",
    [
        "locals {\n  x = " + "[" * DEEP + "]" * DEEP + "\n}\n",
        "locals {\n  x = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n}\n",
        "locals {\n  x = " + "max(" * DEEP + "1" + ")" * DEEP + "\n}\n",
        'resource "aws_iam_policy" "p" {\n  policy = jsonencode({Statement = ' + "[" * DEEP + "]" * DEEP + "})\n}\n",
    ],
    ids=["brackets", "objects", "calls", "jsonencode"],
)
def test_nesting_800_deep_is_a_problem_on_its_line_not_a_recursion_error(text: str) -> None:
    tf = parse_text(text, name="deep.tf")
    assert tf.problem is not None
    assert tf.problem.message.startswith("Nested too deeply to review")
    assert "\n" not in tf.problem.message
    assert tf.problem.line == 2
    assert tf.blocks == []


def test_blocks_nested_800_deep_are_a_problem_too() -> None:
    text = 'resource "aws_instance" "a" {\n' + 'dynamic "x" {\n' * DEEP + "}\n" * DEEP + "}\n"
    tf = parse_text(text, name="deep.tf")
    assert tf.problem is not None
    assert tf.problem.message.startswith("Nested too deeply to review")
    assert 1 < tf.problem.line < DEEP


def test_ordinary_nesting_is_well_within_the_limit() -> None:
    text = "locals {\n  x = " + "{a = " * 40 + "[1]" + "}" * 40 + "\n}\n"
    tf = parse_text(text, name="nested.tf")
    assert tf.problem is None
    assert "x" in tf.blocks[0].attributes
