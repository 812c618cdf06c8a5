"""Cost rules (OPS-F…, for FinOps): oversized classes, needless IOPS, log retention, NAT, idle resources, spot."""

from __future__ import annotations

import re
from collections.abc import Iterator

from opsmith.review.hcl import Block, Expr, is_literal
from opsmith.review.module import Module, environment_of
from opsmith.review.rules._helpers import as_int, companions, is_true, literal_strings
from opsmith.review.rules._registry import Hit, hit, rule

_SIZED = {
    "aws_instance": "instance_type",
    "aws_launch_template": "instance_type",
    "aws_launch_configuration": "instance_type",
    "aws_db_instance": "instance_class",
    "aws_rds_cluster_instance": "instance_class",
    "aws_elasticache_cluster": "node_type",
    "aws_elasticache_replication_group": "node_type",
    "aws_eks_node_group": "instance_types",
}
_NAMED_SIZES = {"nano": 0.25, "micro": 0.5, "small": 1.0, "medium": 2.0, "large": 2.0, "metal": 96.0}
_ACCELERATED = re.compile(r"^(p\d|g\d|inf\d|trn\d|dl\d|x\d|u-|f\d|vt\d)")
_SMALL_ROLES = ("bastion", "jump", "vpn", "proxy", "nat-instance")
#: Most vCPU-ish units (xlarge = 4) a role or environment plausibly needs.
_LIMITS = {"small-role": 2.0, "nonprod": 8.0}


def _units(instance_type: str) -> tuple[str, float] | None:
    """(family, size units) of e.g. "m5.4xlarge" (16) or "db.r6g.large" (2)."""
    parts = instance_type.lower().split(".")
    if parts and parts[0] in {"db", "cache"}:
        parts = parts[1:]
    if len(parts) != 2:
        return None
    family, size = parts
    if size in _NAMED_SIZES:
        return family, _NAMED_SIZES[size]
    match = re.fullmatch(r"(\d*)xlarge", size)
    if match:
        return family, 4.0 * int(match.group(1) or 1)
    return None


def _role_words(block: Block, module: Module) -> str:
    tags = module.tags(block)
    words = [block.name, str(block.get("name", "")), str(block.get("identifier", ""))]
    words += [str(tags.get(key, "")) for key in ("role", "name", "purpose")]
    return " ".join(words).lower()


@rule(
    "OPS-F001",
    category="cost",
    severity="warning",
    title="Instance or database class is far larger than its role needs",
    fix="Right-size: bastions and jump hosts run on t3.micro/t3.small; dev and test on up to *.xlarge, "
    "burstable where possible; keep GPU and memory-optimised families for the workloads that need them.",
    equivalents=("infracost: instance right-sizing (no checkov/tfsec check)",),
    keywords=("instance",),
)
def oversized(module: Module) -> Iterator[Hit]:
    """A class above xlarge-ish limits for a bastion/jump host, or above 2xlarge (or GPU) outside production."""
    for kind, attribute in _SIZED.items():
        for block in module.resources(kind):
            attr = block.attr(attribute)
            if attr is None:
                continue
            for instance_type in literal_strings(module.resolve(attr.value)):
                parsed = _units(instance_type)
                if parsed is None:
                    continue
                family, units = parsed
                words = _role_words(block, module)
                small_role = next((role for role in _SMALL_ROLES if role in words), None)
                env = environment_of(block, module)
                if small_role and (units > _LIMITS["small-role"] or _ACCELERATED.match(family)):
                    yield hit(
                        block,
                        f"{instance_type} is far larger than a {small_role} host needs",
                        line=attr.line,
                    )
                elif env == "nonprod" and (units > _LIMITS["nonprod"] or _ACCELERATED.match(family)):
                    yield hit(block, f"{instance_type} in a non-production environment", line=attr.line)
                else:
                    continue
                break


@rule(
    "OPS-F002",
    category="cost",
    severity="warning",
    title="Provisioned IOPS (io1/io2) where gp3 would do",
    fix="Use gp3 (3,000 IOPS baseline, up to 16,000 provisioned) unless you need io2 latency or over 16,000 IOPS.",
    equivalents=("infracost: io1/io2 to gp3 (no checkov/tfsec check)",),
    keywords=("iops",),
)
def provisioned_iops(module: Module) -> Iterator[Hit]:
    """io1/io2 with 16,000 IOPS or fewer (gp3's range), or in a non-production environment."""
    candidates: list[tuple[Block, Block, str]] = []  # (owner, holder, type attribute)
    for volume in module.resources("aws_ebs_volume"):
        candidates.append((volume, volume, "type"))
    for db in module.resources("aws_db_instance"):
        candidates.append((db, db, "storage_type"))
    for instance in module.resources("aws_instance", "aws_launch_template"):
        for nested in instance.walk():
            if nested.type in {"root_block_device", "ebs_block_device", "ebs"}:
                candidates.append((instance, nested, "volume_type"))
    for owner, holder, type_attr in candidates:
        volume_type = holder.get(type_attr)
        if volume_type not in {"io1", "io2"}:
            continue
        iops = as_int(module.resolve(holder.get("iops")))
        nonprod = environment_of(owner, module) == "nonprod"
        if nonprod or (iops is not None and iops <= 16000):
            why = "in a non-production environment" if nonprod else f"for {iops} IOPS, within gp3's range"
            yield hit(owner, f"Provisioned-IOPS {volume_type} storage {why}", line=holder.line_of(type_attr))


_LOG_BUCKET = re.compile(r"(log|logs|logging|archive|backup|audit|trail|flowlog)", re.I)


@rule(
    "OPS-F003",
    category="cost",
    severity="warning",
    title="Log or archive bucket has no lifecycle rules",
    fix="Add aws_s3_bucket_lifecycle_configuration: transition to STANDARD_IA/GLACIER after 30-90 days "
    "and expire after the retention period.",
    equivalents=("CKV2_AWS_61",),
    keywords=("lifecycle",),
)
def log_bucket_lifecycle(module: Module) -> Iterator[Hit]:
    """A bucket whose name says logs/archive/backup/audit, with no lifecycle configuration."""
    for bucket in module.resources("aws_s3_bucket"):
        name = bucket.get("bucket") or bucket.get("bucket_prefix") or ""
        names = f"{bucket.name} {name if isinstance(name, str) else ''}"
        if not _LOG_BUCKET.search(names):
            continue
        if bucket.child("lifecycle_rule") or companions(bucket, module, "aws_s3_bucket_lifecycle_configuration"):
            continue
        yield hit(bucket, f"Bucket {bucket.name} collects logs/archives forever (no lifecycle rules)")


def _count_of(block: Block) -> tuple[int | None, int]:
    """(literal count or None when computed, line) of a block's count/for_each; (1, line) when absent."""
    for name in ("count", "for_each"):
        attr = block.attr(name)
        if attr is not None:
            value = attr.value
            if isinstance(value, int) and not isinstance(value, bool):
                return value, attr.line
            if isinstance(value, list | dict):
                return len(value), attr.line
            return None, attr.line
    return 1, block.line


@rule(
    "OPS-F004",
    category="cost",
    severity="warning",
    title="One NAT gateway per AZ in a non-production environment",
    fix="Use a single NAT gateway outside production (single_nat_gateway = true in the VPC module); "
    "each one costs ~$32/month plus data processing.",
    equivalents=("infracost: NAT gateway count (no checkov/tfsec check)",),
    keywords=("nat",),
)
def nat_per_az(module: Module) -> Iterator[Hit]:
    """Several (or per-AZ counted) NAT gateways, or a VPC module with one per AZ, outside production."""
    gateways = module.resources("aws_nat_gateway")
    for gateway in gateways:
        if environment_of(gateway, module) != "nonprod":
            continue
        count, line = _count_of(gateway)
        if count is None or count > 1:
            yield hit(gateway, "A NAT gateway per availability zone in a non-production environment", line=line)
    nonprod = [g for g in gateways if environment_of(g, module) == "nonprod" and _count_of(g)[0] == 1]
    for extra in nonprod[1:]:
        yield hit(extra, "Several NAT gateways in a non-production environment")
    for vpc in module.of_type("module"):
        if environment_of(vpc, module) != "nonprod":
            continue
        per_az = vpc.attr("one_nat_gateway_per_az")
        single = vpc.attr("single_nat_gateway")
        if per_az is not None and is_true(per_az.value):
            yield hit(vpc, "VPC module creates a NAT gateway per AZ in a non-production environment", line=per_az.line)
        elif single is not None and is_true(vpc.get("enable_nat_gateway")) and not is_true(single.value):
            yield hit(
                vpc, "VPC module creates a NAT gateway per subnet in a non-production environment", line=single.line
            )


@rule(
    "OPS-F005",
    category="cost",
    severity="warning",
    title="Elastic IP or EBS volume is not attached to anything",
    fix="Attach it (aws_eip_association / aws_volume_attachment) or delete it; idle EIPs and volumes are billed.",
    equivalents=("infracost: idle resources (no checkov/tfsec check)",),
    keywords=("attach",),
)
def unattached(module: Module) -> Iterator[Hit]:
    """An aws_eip with no instance/network interface and nothing using it; an aws_ebs_volume never attached."""
    for eip in module.resources("aws_eip"):
        if eip.get("instance") or eip.get("network_interface"):
            continue
        if module.referring(eip.address):
            continue
        yield hit(eip, f"Elastic IP {eip.name} is allocated but not attached to anything")
    for volume in module.resources("aws_ebs_volume"):
        if module.referring(volume.address):
            continue
        yield hit(volume, f"EBS volume {volume.name} is never attached to an instance")


def _spot(block: Block) -> bool:
    market = block.child("instance_market_options")
    if market is not None and market.get("market_type") == "spot":
        return True
    return is_true(block.get("spot")) or bool(block.get("spot_price"))


@rule(
    "OPS-F006",
    category="cost",
    severity="warning",
    title="On-demand capacity in a development environment",
    fix='Run dev/test capacity on spot: instance_market_options { market_type = "spot" }, a mixed instances '
    'policy with on_demand_percentage_above_base_capacity = 0, or capacity_type = "SPOT" for node groups.',
    equivalents=("infracost: spot usage (no checkov/tfsec check)",),
    keywords=("demand",),
)
def on_demand_in_dev(module: Module) -> Iterator[Hit]:
    """Instances, ASGs and EKS node groups in a declared dev/test environment that do not use spot."""
    for instance in module.resources("aws_instance"):
        if environment_of(instance, module) == "nonprod" and not _spot(instance):
            words = _role_words(instance, module)
            if any(role in words for role in _SMALL_ROLES):
                continue  # a bastion must stay up; spot would interrupt it
            yield hit(instance, f"Instance {instance.name} runs on-demand in a non-production environment")
    for group in module.resources("aws_autoscaling_group"):
        if environment_of(group, module) != "nonprod":
            continue
        policy = group.child("mixed_instances_policy")
        distribution = policy.child("instances_distribution") if policy else None
        share = as_int(distribution.get("on_demand_percentage_above_base_capacity")) if distribution else None
        if distribution is not None and share is not None and share < 100:
            continue
        template = group.child("launch_template")
        template_refs = {r.address for a in (template.attributes.values() if template else ()) for r in a.refs}
        if any(_spot(t) for t in module.all_resources("aws_launch_template") if t.address in template_refs):
            continue
        yield hit(group, f"Auto Scaling group {group.name} runs on-demand only in a non-production environment")
    for node_group in module.resources("aws_eks_node_group"):
        if environment_of(node_group, module) != "nonprod":
            continue
        capacity = node_group.get("capacity_type")
        if capacity != "SPOT" and not (
            isinstance(capacity, Expr) or (isinstance(capacity, str) and not is_literal(capacity))
        ):
            yield hit(
                node_group,
                f"EKS node group {node_group.name} uses on-demand capacity in a non-production environment",
                line=node_group.line_of("capacity_type"),
            )
