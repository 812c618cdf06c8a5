"""Correctness rules (OPS-C…): syntax, references, depends_on, duplicates, required arguments, CIDRs, types."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from opsmith.review.hcl import Block, Expr, HclList, Value, is_literal
from opsmith.review.module import Module
from opsmith.review.rules._registry import Hit, hit, rule


@rule(
    "OPS-C000",
    category="correctness",
    severity="critical",
    title="File cannot be parsed as HCL",
    fix="Fix the syntax at the reported line (run `terraform fmt` / `terraform validate` to see it too).",
    equivalents=("terraform validate",),
    keywords=("syntax",),
)
def syntax_errors(module: Module) -> Iterator[Hit]:
    """A .tf file that python-hcl2 cannot parse (or that is not text); other files are still reviewed."""
    for tf in module.files:
        if tf.problem is not None:
            yield Hit(file=tf.name, line=tf.problem.line, resource=None, issue=tf.problem.message)


#: Arguments and blocks whose references are not lookups of declared objects.
_NOT_LOOKUPS = frozenset({"depends_on", "provider", "providers", "ignore_changes"})
_NOT_CHECKED_BLOCKS = frozenset({"moved", "import", "removed"})


@rule(
    "OPS-C001",
    category="correctness",
    severity="critical",
    title="Reference to an undeclared variable, local, resource, data source or module",
    fix="Declare it (variable/locals/resource/data/module block) or correct the name.",
    equivalents=("terraform validate",),
    keywords=("undeclared",),
)
def undefined_references(module: Module) -> Iterator[Hit]:
    """``var.x``, ``local.x``, ``module.x``, ``data.t.n`` and ``t.n`` must be declared in the same folder."""
    declared = module.declared
    for top in module.blocks:
        if top.type in _NOT_CHECKED_BLOCKS:
            continue
        reported: set[str] = set()
        for block in top.walk():
            for attribute in block.attributes.values():
                if attribute.name in _NOT_LOOKUPS:
                    continue
                for ref in attribute.refs:
                    if ref.address in declared or ref.address in reported:
                        continue
                    reported.add(ref.address)
                    yield hit(top, f"Reference to undeclared {_describe(ref.address)}", line=ref.line)


def _describe(address: str) -> str:
    kind, _, name = address.partition(".")
    if kind == "var":
        return f"variable {name!r} ({address})"
    if kind == "local":
        return f"local value {name!r} ({address})"
    if kind == "module":
        return f"module {name!r} ({address})"
    if kind == "data":
        return f"data source {address}"
    return f"resource {address}"


@rule(
    "OPS-C002",
    category="correctness",
    severity="critical",
    title="depends_on names something that does not exist",
    fix="Point depends_on at a declared resource, data source or module (as a reference, not a string).",
    equivalents=("terraform validate",),
    keywords=("depends",),
)
def bad_depends_on(module: Module) -> Iterator[Hit]:
    """Every depends_on entry must be a reference to a resource, data source or module declared here."""
    declared = module.declared
    for top in module.blocks:
        for block in top.walk():
            attr = block.attr("depends_on")
            if attr is None:
                continue
            items = attr.value if isinstance(attr.value, list) else [attr.value]
            lines = attr.value.item_lines if isinstance(attr.value, HclList) else []
            for index, item in enumerate(items):
                line = lines[index] if index < len(lines) else attr.line
                if isinstance(item, str):
                    yield hit(top, f'depends_on entry "{item}" is a string, not a reference', line=line)
            for ref in attr.refs:
                if ref.address.startswith(("var.", "local.")):
                    yield hit(top, f"depends_on cannot name {ref.address}", line=ref.line)
                elif ref.address not in declared:
                    yield hit(top, f"depends_on names {ref.address}, which is not declared", line=ref.line)


def _is_override(file: str) -> bool:
    name = file.rsplit("/", 1)[-1]
    return name == "override.tf" or name.endswith("_override.tf")


@rule(
    "OPS-C003",
    category="correctness",
    severity="critical",
    title="Duplicate address or argument",
    fix="Rename or remove one of the two declarations.",
    equivalents=("terraform validate",),
    keywords=("duplicate",),
)
def duplicates(module: Module) -> Iterator[Hit]:
    """Two resources/data/modules/variables/outputs/locals with one address, or an argument set twice."""
    first: dict[str, Block] = {}
    reviewed = module.reviewed_files
    for block in module.all_blocks:
        if _is_override(block.file):
            continue
        keys: list[tuple[str, int]] = []
        if block.type in {"resource", "data", "module", "variable", "output"} and block.labels:
            keys.append((block.address, block.line))
        elif block.type == "locals":
            keys.extend((f"local.{name}", a.line) for name, a in block.attributes.items())
        for key, line in keys:
            earlier = first.get(key)
            if earlier is None:
                first[key] = block
            elif block.file in reviewed:
                where = f"{earlier.file}:{earlier.line}"
                yield hit(block, f"{key} is declared twice (first at {where})", line=line)
    for top in module.blocks:
        for block in top.walk():
            for name, line in block.duplicate_attributes:
                yield hit(top, f"Argument {name} is set twice in the same block", line=line)


# name -> (required arguments, required nested blocks, arguments any one of which stands in for them all)
_REQUIRED: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "aws_instance": (("ami", "instance_type"), (), ("launch_template",)),
    "aws_db_instance": (
        ("instance_class", "engine", "allocated_storage"),
        (),
        ("replicate_source_db", "snapshot_identifier", "restore_to_point_in_time", "s3_import"),
    ),
    "aws_rds_cluster": (("engine",), (), ()),
    "aws_rds_cluster_instance": (("cluster_identifier", "instance_class", "engine"), (), ()),
    "aws_security_group_rule": (("type", "from_port", "to_port", "protocol", "security_group_id"), (), ()),
    "aws_vpc_security_group_ingress_rule": (("security_group_id", "ip_protocol"), (), ()),
    "aws_vpc_security_group_egress_rule": (("security_group_id", "ip_protocol"), (), ()),
    "aws_subnet": (("vpc_id",), (), ()),
    "aws_route_table": (("vpc_id",), (), ()),
    "aws_route": (("route_table_id",), (), ()),
    "aws_route_table_association": (("route_table_id",), (), ()),
    "aws_nat_gateway": (("subnet_id",), (), ()),
    "aws_ebs_volume": (("availability_zone",), (), ()),
    "aws_volume_attachment": (("device_name", "instance_id", "volume_id"), (), ()),
    "aws_iam_role": (("assume_role_policy",), (), ()),
    "aws_iam_policy": (("policy",), (), ()),
    "aws_iam_role_policy": (("policy", "role"), (), ()),
    "aws_iam_role_policy_attachment": (("role", "policy_arn"), (), ()),
    "aws_s3_bucket_policy": (("bucket", "policy"), (), ()),
    "aws_s3_bucket_public_access_block": (("bucket",), (), ()),
    "aws_s3_bucket_versioning": (("bucket",), ("versioning_configuration",), ()),
    "aws_s3_bucket_server_side_encryption_configuration": (("bucket",), ("rule",), ()),
    "aws_s3_bucket_lifecycle_configuration": (("bucket",), ("rule",), ()),
    "aws_s3_bucket_logging": (("bucket", "target_bucket", "target_prefix"), (), ()),
    "aws_lambda_function": (("function_name", "role"), (), ()),
    "aws_cloudtrail": (("name", "s3_bucket_name"), (), ()),
    "aws_lb_listener": (("load_balancer_arn",), ("default_action",), ()),
    "aws_eks_cluster": (("name", "role_arn"), ("vpc_config",), ()),
    "aws_eks_node_group": (("cluster_name", "node_role_arn", "subnet_ids"), ("scaling_config",), ()),
    "aws_autoscaling_group": (("max_size", "min_size"), (), ()),
    "aws_efs_mount_target": (("file_system_id", "subnet_id"), (), ()),
    "aws_db_subnet_group": (("subnet_ids",), (), ()),
    "aws_route53_record": (("name", "type", "zone_id"), (), ()),
    "aws_ebs_snapshot": (("volume_id",), (), ()),
    "aws_ebs_snapshot_copy": (("source_region", "source_snapshot_id"), (), ()),
    "aws_ami_copy": (("name", "source_ami_id", "source_ami_region"), (), ()),
    "aws_db_snapshot": (("db_instance_identifier", "db_snapshot_identifier"), (), ()),
    "aws_ecs_task_definition": (("family", "container_definitions"), (), ()),
    "aws_elb": ((), ("listener",), ()),
}


@rule(
    "OPS-C004",
    category="correctness",
    severity="critical",
    title="Required argument missing",
    fix="Add the missing argument (see the provider documentation for the resource).",
    equivalents=("terraform validate",),
    keywords=("required",),
)
def missing_required(module: Module) -> Iterator[Hit]:
    """Required arguments and blocks of common AWS resources (and a module's source) must be set."""
    for block in module.blocks:
        if block.type == "module":
            if "source" not in block.attributes:
                yield hit(block, f"module {block.name} has no source")
            continue
        if block.type != "resource" or block.kind not in _REQUIRED:
            continue
        arguments, nested, alternatives = _REQUIRED[block.kind]
        present = set(block.attributes) | {b.type for b in block.blocks}
        present |= {b.labels[0] for b in block.children("dynamic") if b.labels}
        if any(alt in present for alt in alternatives):
            continue
        missing = [name for name in (*arguments, *nested) if name not in present]
        if missing:
            yield hit(block, f"{block.kind} {block.name} is missing required {', '.join(missing)}")


_CIDR_LIKE = re.compile(r"^[0-9a-fA-F:.]+/\d+$")
_IPV4ISH = re.compile(r"^\d{1,3}(\.\d{1,3}){3}/\d{1,3}$")


def _cidr_problem(text: str) -> tuple[str, bool] | None:
    """(problem, fatal) for a bad CIDR, None for a good one."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return f'"{text}" is not a valid CIDR block', True
    if str(network) != text and network.with_prefixlen != text:
        return f'"{text}" has host bits set (did you mean "{network}"?)', False
    return None


@rule(
    "OPS-C005",
    category="correctness",
    severity="critical",
    title="Invalid CIDR block",
    fix="Use a valid network address and prefix, e.g. 10.0.1.0/24 (octets 0-255, prefix 0-32, host bits zero).",
    equivalents=("terraform validate", "tflint"),
    keywords=("cidr",),
)
def invalid_cidrs(module: Module) -> Iterator[Hit]:
    """Literal CIDRs in cidr arguments, anything shaped like an IPv4 CIDR, and cidrsubnet()/cidrhost() inputs."""
    for top in module.blocks:
        for block in top.walk():
            for attribute in block.attributes.values():
                named = "cidr" in attribute.name.lower()
                for text, line in _strings_with_lines(attribute.value, attribute.line, named):
                    problem = _cidr_problem(text)
                    if problem:
                        message, fatal = problem
                        yield hit(top, message, line=line, severity=None if fatal else "warning")


def _strings_with_lines(value: Value, line: int, named: bool) -> Iterator[tuple[str, int]]:
    if isinstance(value, str):
        text = value.strip()
        if is_literal(text) and ((named and _CIDR_LIKE.match(text)) or _IPV4ISH.match(text)):
            yield text, line
    elif isinstance(value, list):
        lines = value.item_lines if isinstance(value, HclList) else []
        for index, item in enumerate(value):
            yield from _strings_with_lines(item, lines[index] if index < len(lines) else line, named)
    elif isinstance(value, dict):
        key_lines = getattr(value, "key_lines", {})
        for key, item in value.items():
            yield from _strings_with_lines(item, key_lines.get(key, line), named or "cidr" in str(key).lower())
    elif isinstance(value, Expr):
        cidr_call = value.call in {"cidrsubnet", "cidrhost", "cidrnetmask", "cidrsubnets"}
        for index, arg in enumerate(value.args):
            yield from _strings_with_lines(arg, line, named or (cidr_call and index == 0))


# Variable types -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Type:
    kind: str  # string number bool any list set map tuple object
    inner: tuple[_Type, ...] = ()
    fields: tuple[tuple[str, _Type, bool], ...] = ()  # (name, type, optional) for objects


def _parse_type(value: Value) -> _Type | None:
    """The type constraint ``value`` (from ``type = ...``) describes; None when unknown."""
    if isinstance(value, Expr) and value.call is None:
        word = value.text.strip()
        return _Type(word) if word in {"string", "number", "bool", "any"} else None
    if not isinstance(value, Expr):
        return None
    call, args = value.call, value.args
    if call in {"list", "set", "map"} and len(args) == 1:
        inner = _parse_type(args[0])
        return _Type(call, (inner,)) if inner else None
    if call == "tuple" and len(args) == 1 and isinstance(args[0], list):
        items = [_parse_type(a) for a in args[0]]
        return _Type("tuple", tuple(i for i in items if i)) if all(items) else None
    if call == "object" and len(args) == 1 and isinstance(args[0], dict):
        fields = []
        for name, spec in args[0].items():
            optional = isinstance(spec, Expr) and spec.call == "optional"
            inner = (
                _parse_type(spec.args[0]) if optional and isinstance(spec, Expr) and spec.args else _parse_type(spec)
            )
            if inner is None:
                return None
            fields.append((name, inner, optional))
        return _Type("object", fields=tuple(fields))
    return None


def _mismatch(value: Value, expected: _Type) -> str | None:
    """Why ``value`` cannot be converted to ``expected`` (Terraform's conversion rules), or None."""
    if value is None or isinstance(value, Expr) or expected.kind == "any":
        return None
    if isinstance(value, str) and not is_literal(value):
        return None
    kind = expected.kind
    if kind == "string":
        return None if isinstance(value, str | int | float | bool) else f"{_show(value)} is not a string"
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return f"{_show(value)} is not a number"
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return f"{_show(value)} is not a number"
        return None
    if kind == "bool":
        if isinstance(value, bool) or (isinstance(value, str) and value in {"true", "false"}):
            return None
        return f"{_show(value)} is not a bool"
    if kind in {"list", "set"}:
        if not isinstance(value, list):
            return f"{_show(value)} is not a {kind}"
        for item in value:
            problem = _mismatch(item, expected.inner[0])
            if problem:
                return f"an element: {problem}"
        return None
    if kind == "tuple":
        if not isinstance(value, list) or len(value) != len(expected.inner):
            return f"{_show(value)} is not a tuple of {len(expected.inner)}"
        return next((p for item, t in zip(value, expected.inner, strict=True) if (p := _mismatch(item, t))), None)
    if kind == "map":
        if not isinstance(value, dict):
            return f"{_show(value)} is not a map"
        return next((f"key {k}: {p}" for k, v in value.items() if (p := _mismatch(v, expected.inner[0]))), None)
    if kind == "object":
        if not isinstance(value, dict):
            return f"{_show(value)} is not an object"
        for name, field_type, optional in expected.fields:
            if name not in value:
                if not optional:
                    return f"attribute {name!r} is required"
                continue
            problem = _mismatch(value[name], field_type)
            if problem:
                return f"attribute {name}: {problem}"
    return None


def _show(value: Value) -> str:
    if isinstance(value, str):
        return f'"{value[:30]}"'
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return str(value).lower() if isinstance(value, bool) else str(value)


@rule(
    "OPS-C006",
    category="correctness",
    severity="critical",
    title="Variable default does not match its type",
    fix="Change the default (or the type constraint) so they agree.",
    equivalents=("terraform validate",),
    keywords=("default", "type"),
)
def variable_type_mismatch(module: Module) -> Iterator[Hit]:
    """A variable whose default cannot be converted to its declared type."""
    for variable in module.of_type("variable"):
        type_attr, default = variable.attr("type"), variable.attr("default")
        if type_attr is None or default is None:
            continue
        expected = _parse_type(type_attr.value)
        if expected is None:
            continue
        problem = _mismatch(default.value, expected)
        if problem:
            shown = " ".join(str(type_attr.value).split())
            yield hit(
                variable,
                f"Default of variable {variable.name} does not match type {shown}: {problem}",
                line=default.line,
            )
