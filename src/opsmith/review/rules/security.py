"""Security rules (OPS-S…): IAM, public S3, encryption, exposure, secrets, IMDS, logging, databases."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

from opsmith.review.hcl import Block, is_literal
from opsmith.review.module import Module, environment_of
from opsmith.review.rules._helpers import (
    Statement,
    as_int,
    as_list,
    bucket_keys,
    bucket_targets,
    companions,
    document_statements,
    is_false,
    is_true,
    item_line,
    policy_statements,
)
from opsmith.review.rules._registry import Hit, hit, rule
from opsmith.review.secrets import find_secrets

_POLICY_RESOURCES = ("aws_iam_policy", "aws_iam_role_policy", "aws_iam_user_policy", "aws_iam_group_policy")


def _iam_statements(module: Module) -> Iterator[Statement]:
    """Every IAM (identity) policy statement in the module, each counted once."""
    for document in module.data("aws_iam_policy_document"):
        yield from document_statements(document)
    for block in module.resources(*_POLICY_RESOURCES):
        if "data.aws_iam_policy_document." not in str(block.get("policy")):
            yield from policy_statements(block, "policy", module)
    for role in module.resources("aws_iam_role"):
        for inline in role.children("inline_policy"):
            statements = policy_statements(inline, "policy", module)
            if "data.aws_iam_policy_document." not in str(inline.get("policy")):
                yield from statements


@rule(
    "OPS-S001",
    category="security",
    severity="critical",
    title="IAM policy allows every action",
    fix='List the exact actions the principal needs (e.g. "s3:GetObject") instead of "*" or "service:*".',
    equivalents=("CKV_AWS_1", "CKV_AWS_49", "CKV_AWS_62", "CKV_AWS_63", "tfsec:aws-iam-no-policy-wildcards"),
    keywords=("action",),
)
def iam_wildcard_actions(module: Module) -> Iterator[Hit]:
    """An Allow statement whose actions include ``*`` (critical) or ``service:*`` (warning)."""
    for statement in _iam_statements(module):
        if not statement.allows or statement.not_actions:
            continue
        line = statement.action_line or statement.line
        if "*" in statement.actions:
            yield hit(statement.block, 'IAM policy allows every action ("*") — full administrator access', line=line)
        else:
            broad = [a for a in statement.actions if a.endswith(":*")]
            if broad:
                yield hit(
                    statement.block,
                    f"IAM policy allows every action of a service ({', '.join(broad)})",
                    line=line,
                    severity="warning",
                )


_RESOURCELESS = frozenset(
    {
        "sts:getcalleridentity",
        "ecr:getauthorizationtoken",
        "cloudwatch:putmetricdata",
        "xray:puttracesegments",
        "xray:puttelemetryrecords",
    }
)


def _read_only(action: str) -> bool:
    lowered = action.lower()
    if lowered in _RESOURCELESS:
        return True
    verb = lowered.split(":", 1)[-1]
    return verb.startswith(("describe", "list"))


@rule(
    "OPS-S002",
    category="security",
    severity="warning",
    title='IAM policy grants write access on every resource ("*")',
    fix="Scope Resource to the ARNs the principal works on, e.g. aws_s3_bucket.x.arn or a name prefix.",
    equivalents=("CKV_AWS_355", "CKV_AWS_290", "CKV_AWS_111", "tfsec:aws-iam-no-policy-wildcards"),
    keywords=("resource",),
)
def iam_wildcard_resources(module: Module) -> Iterator[Hit]:
    """An Allow statement on resource ``*`` whose actions go beyond Describe*/List* and resource-less calls."""
    for statement in _iam_statements(module):
        if not statement.allows or "*" not in statement.resources or not statement.actions:
            continue
        if all(_read_only(a) for a in statement.actions):
            continue
        yield hit(
            statement.block,
            'IAM policy applies to every resource ("*") for actions that can be scoped',
            line=statement.resource_line or statement.line,
        )


_PUBLIC_ACLS = {
    "public-read": "readable by anyone",
    "public-read-write": "readable and writable by anyone",
    "authenticated-read": "readable by any AWS account",
}
_PUBLIC_GRANTEES = ("acs.amazonaws.com/groups/global/AllUsers", "acs.amazonaws.com/groups/global/AuthenticatedUsers")


@rule(
    "OPS-S003",
    category="security",
    severity="critical",
    title="S3 bucket ACL grants public access",
    fix='Set acl = "private" (or drop the ACL and set object_ownership = "BucketOwnerEnforced"); '
    "serve public content through CloudFront with an origin access control.",
    equivalents=("CKV_AWS_20", "CKV_AWS_57", "tfsec:aws-s3-no-public-access-with-acl"),
    keywords=("acl",),
)
def s3_public_acl(module: Module) -> Iterator[Hit]:
    """A canned ACL of public-read, public-read-write or authenticated-read, or a grant to AllUsers."""
    for block in module.resources("aws_s3_bucket", "aws_s3_bucket_acl"):
        acl = block.get("acl")
        if isinstance(acl, str) and acl in _PUBLIC_ACLS:
            who = _PUBLIC_ACLS[acl]
            yield hit(block, f'S3 bucket ACL "{acl}" makes objects {who}', line=block.line_of("acl"))
        for nested in block.walk():
            for attribute in nested.attributes.values():
                value = attribute.value
                if isinstance(value, str) and any(grantee in value for grantee in _PUBLIC_GRANTEES):
                    yield hit(
                        block,
                        "S3 bucket ACL grants access to all (or all authenticated) AWS users",
                        line=attribute.line,
                    )


_PAB_FLAGS = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")


@rule(
    "OPS-S004",
    category="security",
    severity="warning",
    title="S3 bucket has no public access block, or it is switched off",
    fix="Add aws_s3_bucket_public_access_block for the bucket with block_public_acls, block_public_policy, "
    "ignore_public_acls and restrict_public_buckets all true.",
    equivalents=(
        "CKV2_AWS_6",
        "CKV_AWS_53",
        "CKV_AWS_54",
        "CKV_AWS_55",
        "CKV_AWS_56",
        "tfsec:aws-s3-specify-public-access-block",
        "tfsec:aws-s3-block-public-acls",
        "tfsec:aws-s3-block-public-policy",
        "tfsec:aws-s3-ignore-public-acls",
        "tfsec:aws-s3-no-public-buckets",
    ),
    keywords=("public access block",),
)
def s3_public_access_block(module: Module) -> Iterator[Hit]:
    """Every bucket needs a public access block with all four flags on (unless the account-level block does it)."""
    account_wide = any(
        all(is_true(b.get(flag)) for flag in _PAB_FLAGS)
        for b in module.all_resources("aws_s3_account_public_access_block")
    )
    if not account_wide:
        for bucket in module.resources("aws_s3_bucket"):
            if not companions(bucket, module, "aws_s3_bucket_public_access_block"):
                yield hit(bucket, f"S3 bucket {bucket.name} has no public access block")
    for block in module.resources("aws_s3_bucket_public_access_block", "aws_s3_account_public_access_block"):
        off = [flag for flag in _PAB_FLAGS if not is_true(block.get(flag))]
        if off:
            line = min(block.line_of(flag) if block.attr(flag) else block.end_line for flag in off)
            if all(block.attr(flag) is None for flag in off):
                line = block.line
            yield hit(
                block,
                f"Public access block leaves {', '.join(off)} off",
                line=line,
                fix=f"Set {', '.join(f'{flag} = true' for flag in off)}.",
            )


def _public_statements(block: Block, attribute: str, module: Module) -> Iterator[Statement]:
    for statement in policy_statements(block, attribute, module):
        if statement.allows and "*" in statement.principals and not statement.has_condition:
            yield statement


@rule(
    "OPS-S005",
    category="security",
    severity="critical",
    title="S3 bucket policy allows anyone (Principal *)",
    fix="Name the principals (account or role ARNs) or add a Condition such as aws:SourceVpce or "
    "aws:PrincipalOrgID; serve public sites through CloudFront with an origin access control.",
    equivalents=("CKV_AWS_70", "tfsec:aws-s3-block-public-policy"),
    keywords=("principal",),
)
def s3_public_policy(module: Module) -> Iterator[Hit]:
    """An Allow statement with Principal "*" (or AWS "*") and no Condition in a bucket policy."""
    for block in module.resources("aws_s3_bucket_policy", "aws_s3_bucket"):
        for statement in _public_statements(block, "policy", module):
            yield Hit(
                file=statement.block.file,
                line=statement.principal_line or statement.line,
                resource=block.address,
                issue='S3 bucket policy allows any principal ("*") with no condition',
            )


@rule(
    "OPS-S006",
    category="security",
    severity="warning",
    title="S3 bucket has no server-side encryption configuration",
    fix='Add aws_s3_bucket_server_side_encryption_configuration with sse_algorithm = "aws:kms" '
    "and a customer-managed kms_master_key_id.",
    equivalents=("CKV_AWS_19", "CKV_AWS_145", "tfsec:aws-s3-enable-bucket-encryption"),
    keywords=("encrypt", "bucket"),
)
def s3_encryption(module: Module) -> Iterator[Hit]:
    """A bucket with neither an inline nor a separate server-side encryption configuration."""
    for bucket in module.resources("aws_s3_bucket"):
        if bucket.child("server_side_encryption_configuration"):
            continue
        if companions(bucket, module, "aws_s3_bucket_server_side_encryption_configuration"):
            continue
        yield hit(bucket, f"S3 bucket {bucket.name} declares no server-side encryption")


def _ebs_default_encryption(module: Module) -> bool:
    return any(is_true(b.get("enabled", True)) for b in module.all_resources("aws_ebs_encryption_by_default"))


@rule(
    "OPS-S007",
    category="security",
    severity="critical",
    title="EBS volume is not encrypted",
    fix="Set encrypted = true (with a kms_key_id), or enable aws_ebs_encryption_by_default for the account.",
    equivalents=(
        "CKV_AWS_3",
        "CKV_AWS_8",
        "CKV2_AWS_2",
        "tfsec:aws-ebs-enable-volume-encryption",
        "tfsec:aws-ec2-enable-at-rest-encryption",
        "tfsec:aws-autoscaling-enable-at-rest-encryption",
    ),
    keywords=("ebs", "encrypt"),
)
def ebs_encryption(module: Module) -> Iterator[Hit]:
    """Volumes, instance root/EBS block devices and launch template/config devices without encrypted = true."""
    if _ebs_default_encryption(module):
        return
    for volume in module.resources("aws_ebs_volume"):
        if not is_true(volume.get("encrypted")) and not volume.get("snapshot_id"):
            yield hit(volume, f"EBS volume {volume.name} is not encrypted", line=volume.line_of("encrypted"))
    for instance in module.resources("aws_instance", "aws_launch_configuration"):
        root = instance.child("root_block_device")
        if root is None:
            yield hit(instance, f"{instance.kind} {instance.name} root volume is not encrypted (no root_block_device)")
        elif not is_true(root.get("encrypted")):
            yield hit(instance, "Root block device is not encrypted", line=root.line_of("encrypted"))
        for device in instance.children("ebs_block_device"):
            if not is_true(device.get("encrypted")) and not device.get("snapshot_id"):
                yield hit(instance, "EBS block device is not encrypted", line=device.line_of("encrypted"))
    for template in module.resources("aws_launch_template"):
        for mapping in template.children("block_device_mappings"):
            ebs = mapping.child("ebs")
            if ebs is not None and not is_true(ebs.get("encrypted")) and not ebs.get("snapshot_id"):
                yield hit(template, "Launch template EBS device is not encrypted", line=ebs.line_of("encrypted"))


def _volume_encrypted(block: Block) -> bool:
    return is_true(block.get("encrypted"))


def _rds_encrypted(block: Block) -> bool:
    if is_true(block.get("storage_encrypted")):
        return True
    if block.kind == "aws_db_instance" and (block.get("replicate_source_db") or block.get("snapshot_identifier")):
        return True  # inherited from the source
    return block.kind == "aws_rds_cluster" and block.get("engine_mode") == "serverless"


@rule(
    "OPS-S008",
    category="security",
    severity="critical",
    title="RDS storage is not encrypted",
    fix="Set storage_encrypted = true with a kms_key_id (an existing database must be restored from an "
    "encrypted snapshot copy).",
    equivalents=(
        "CKV_AWS_16",
        "CKV_AWS_96",
        "tfsec:aws-rds-encrypt-instance-storage-data",
        "tfsec:aws-rds-encrypt-cluster-storage-data",
    ),
    keywords=("rds", "encrypt"),
)
def rds_encryption(module: Module) -> Iterator[Hit]:
    """aws_db_instance / aws_rds_cluster without storage_encrypted = true (replicas and restores inherit)."""
    for db in module.resources("aws_db_instance", "aws_rds_cluster"):
        if not _rds_encrypted(db):
            yield hit(db, f"Database {db.name} stores data unencrypted", line=db.line_of("storage_encrypted"))


@rule(
    "OPS-S009",
    category="security",
    severity="critical",
    title="EFS file system is not encrypted",
    fix="Set encrypted = true with a kms_key_id; an existing file system must be recreated and its data copied.",
    equivalents=("CKV_AWS_42", "tfsec:aws-efs-enable-at-rest-encryption"),
    keywords=("efs", "encrypt"),
)
def efs_encryption(module: Module) -> Iterator[Hit]:
    """aws_efs_file_system without encrypted = true."""
    for fs in module.resources("aws_efs_file_system"):
        if not is_true(fs.get("encrypted")):
            yield hit(fs, f"EFS file system {fs.name} is not encrypted", line=fs.line_of("encrypted"))


@rule(
    "OPS-S010",
    category="security",
    severity="critical",
    title="Snapshot or image copy is not encrypted",
    fix="Set encrypted = true (and kms_key_id) on the copy; snapshot only encrypted sources.",
    equivalents=("CKV_AWS_146", "CKV_AWS_3", "tfsec:aws-ebs-enable-volume-encryption"),
    keywords=("snapshot", "encrypt"),
)
def snapshot_encryption(module: Module) -> Iterator[Hit]:
    """Snapshot/AMI copies without encrypted = true, and snapshots of unencrypted volumes or databases here."""
    for copy in module.resources("aws_ebs_snapshot_copy", "aws_ami_copy"):
        if not is_true(copy.get("encrypted")):
            yield hit(copy, f"{copy.kind} {copy.name} is not encrypted", line=copy.line_of("encrypted"))
    sources: list[tuple[str, str, str, Callable[[Block], bool]]] = [
        ("aws_ebs_snapshot", "volume_id", "aws_ebs_volume", _volume_encrypted),
        ("aws_db_snapshot", "db_instance_identifier", "aws_db_instance", _rds_encrypted),
        ("aws_db_cluster_snapshot", "db_cluster_identifier", "aws_rds_cluster", _rds_encrypted),
    ]
    for kind, attribute, source_kind, encrypted in sources:
        for snapshot in module.resources(kind):
            attr = snapshot.attr(attribute)
            if attr is None:
                continue
            for source in module.all_resources(source_kind):
                if any(r.address == source.address for r in attr.refs) and not encrypted(source):
                    yield hit(snapshot, f"Snapshot of unencrypted {source.address} is unencrypted too", line=attr.line)


@rule(
    "OPS-S011",
    category="security",
    severity="critical",
    title="Database is publicly accessible",
    fix="Set publicly_accessible = false and reach the database through private subnets, a VPN or a bastion.",
    equivalents=("CKV_AWS_17", "tfsec:aws-rds-no-public-db-access"),
    keywords=("public",),
)
def rds_public(module: Module) -> Iterator[Hit]:
    """aws_db_instance / aws_rds_cluster_instance with publicly_accessible = true."""
    for db in module.resources("aws_db_instance", "aws_rds_cluster_instance"):
        if is_true(db.get("publicly_accessible")):
            yield hit(db, f"Database {db.name} is reachable from the internet", line=db.line_of("publicly_accessible"))


_SENSITIVE_PORTS = {
    22: "SSH",
    3389: "RDP",
    3306: "MySQL",
    5432: "PostgreSQL",
    1433: "SQL Server",
    1521: "Oracle",
    27017: "MongoDB",
    6379: "Redis",
    11211: "Memcached",
    9200: "Elasticsearch",
    5439: "Redshift",
    9042: "Cassandra",
    5984: "CouchDB",
}
_WORLD = ("0.0.0.0/0", "::/0")


def _is_world(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return cidr.strip() in _WORLD


def _exposure(protocol: object, from_port: object, to_port: object) -> str | None:
    """What an ingress rule opens, if it is something sensitive."""
    proto = str(protocol).strip().lower() if protocol is not None else ""
    if proto in {"-1", "all"}:
        return "all ports"
    low, high = as_int(from_port), as_int(to_port)
    if low is None or high is None:
        return None
    if low <= 0 and high >= 65535:
        return "all ports"
    names = [f"{name} ({port})" for port, name in _SENSITIVE_PORTS.items() if low <= port <= high]
    return ", ".join(names) if names else None


@rule(
    "OPS-S012",
    category="security",
    severity="critical",
    title="Security group opens SSH, RDP, a database or all ports to the internet",
    fix="Restrict the source to known CIDRs or a security group (e.g. the VPN or bastion), "
    "or use SSM Session Manager instead of open SSH/RDP.",
    equivalents=(
        "CKV_AWS_24",
        "CKV_AWS_25",
        "CKV_AWS_277",
        "tfsec:aws-ec2-no-public-ingress-sgr",
        "tfsec:aws-vpc-no-public-ingress-sg",
    ),
    keywords=("0 0 0 0",),
)
def open_security_group(module: Module) -> Iterator[Hit]:
    """Ingress from 0.0.0.0/0 or ::/0 to 22, 3389, database ports, or every port."""
    for group in module.resources("aws_security_group"):
        for ingress in group.children("ingress"):
            yield from _open_ingress(group, ingress, ("cidr_blocks", "ipv6_cidr_blocks"), "protocol")
    for sg_rule in module.resources("aws_security_group_rule"):
        if sg_rule.get("type") == "ingress":
            yield from _open_ingress(sg_rule, sg_rule, ("cidr_blocks", "ipv6_cidr_blocks"), "protocol")
    for sg_rule in module.resources("aws_vpc_security_group_ingress_rule"):
        yield from _open_ingress(sg_rule, sg_rule, ("cidr_ipv4", "cidr_ipv6"), "ip_protocol")


def _open_ingress(owner: Block, spec: Block, cidr_attrs: tuple[str, ...], protocol_attr: str) -> Iterator[Hit]:
    opened = _exposure(spec.get(protocol_attr), spec.get("from_port"), spec.get("to_port"))
    if opened is None:
        return
    for name in cidr_attrs:
        attr = spec.attr(name)
        if attr is None:
            continue
        for index, cidr in enumerate(as_list(attr.value)):
            if isinstance(cidr, str) and is_literal(cidr) and _is_world(cidr):
                yield hit(owner, f"Ingress from {cidr} to {opened}", line=item_line(attr, index))
                return


@rule(
    "OPS-S013",
    category="security",
    severity="critical",
    title="Hardcoded secret in the configuration",
    fix="Remove the value from the code and rotate it; read it from a sensitive variable, AWS Secrets Manager "
    "or SSM Parameter Store (e.g. manage_master_user_password = true for RDS).",
    equivalents=(
        "CKV_AWS_41",
        "CKV_AWS_45",
        "CKV_AWS_46",
        "CKV_SECRET_2",
        "CKV_SECRET_13",
        "tfsec:aws-misc-no-exposing-plaintext-credentials",
        "tfsec:aws-ec2-no-secrets-in-user-data",
        "tfsec:general-secrets-no-plaintext-exposure",
    ),
    keywords=("secret",),
)
def hardcoded_secrets(module: Module) -> Iterator[Hit]:
    """Whatever the redaction before an LLM call removes (opsmith.review.secrets): token formats, private keys,
    webhook and credential URLs, auth headers, password flags, secret-named values; one finding per line."""
    for tf in module.files:
        lines: set[int] = set()
        for secret in find_secrets(tf):
            if secret.first and secret.line not in lines:
                lines.add(secret.line)
                block = tf.block_at(secret.line)
                resource = block.address_at(secret.line) if block is not None else None
                yield Hit(file=tf.name, line=secret.line, resource=resource, issue=secret.issue)


@rule(
    "OPS-S014",
    category="security",
    severity="warning",
    title="Instance metadata service allows IMDSv1",
    fix='Add metadata_options { http_tokens = "required" } (IMDSv2 only).',
    equivalents=(
        "CKV_AWS_79",
        "tfsec:aws-ec2-enforce-http-token-imds",
        "tfsec:aws-ec2-enforce-launch-config-http-token-imds",
    ),
    keywords=("imds",),
)
def imdsv1(module: Module) -> Iterator[Hit]:
    """aws_instance / aws_launch_template / aws_launch_configuration without http_tokens = "required"."""
    for block in module.resources("aws_instance", "aws_launch_template", "aws_launch_configuration"):
        options = block.child("metadata_options")
        if options is None:
            yield hit(block, f"{block.kind} {block.name} allows IMDSv1 (no metadata_options)")
        elif options.get("http_endpoint") != "disabled" and options.get("http_tokens") != "required":
            yield hit(block, 'IMDSv1 is allowed (http_tokens is not "required")', line=options.line_of("http_tokens"))


def _log_destinations(module: Module) -> set[str]:
    """Buckets that receive logs (S3 access logs, LB logs, CloudTrail, flow logs); they need no logging of their own."""
    keys: set[str] = set()
    for block in module.all_blocks:
        for nested in block.walk():
            for name in ("target_bucket", "s3_bucket_name", "log_destination"):
                attr = nested.attr(name)
                if attr is not None:
                    keys.update(r.address for r in attr.refs)
                    if isinstance(attr.value, str):
                        keys.add(attr.value)
            if nested.type == "access_logs":
                keys |= bucket_targets(nested, module)
    return keys


@rule(
    "OPS-S015",
    category="security",
    severity="warning",
    title="S3 bucket has no access logging",
    fix="Add aws_s3_bucket_logging with target_bucket set to a dedicated log bucket.",
    equivalents=("CKV_AWS_18", "tfsec:aws-s3-enable-bucket-logging"),
    keywords=("logging", "bucket"),
)
def s3_logging(module: Module) -> Iterator[Hit]:
    """A bucket without server access logging, unless it is itself a log destination."""
    destinations = _log_destinations(module)
    for bucket in module.resources("aws_s3_bucket"):
        if bucket_keys(bucket) & destinations or bucket.child("logging"):
            continue
        if companions(bucket, module, "aws_s3_bucket_logging"):
            continue
        yield hit(bucket, f"S3 bucket {bucket.name} has no access logging")


@rule(
    "OPS-S016",
    category="security",
    severity="critical",
    title="CloudTrail logging is disabled or unverifiable",
    fix="Set enable_logging = true (or drop the argument: logging is on by default).",
    equivalents=("CKV_AWS_36", "CKV_AWS_67", "tfsec:aws-cloudtrail-enable-log-validation"),
    keywords=("cloudtrail",),
)
def cloudtrail_logging(module: Module) -> Iterator[Hit]:
    """A trail with enable_logging = false (critical) or without log file validation (warning)."""
    for trail in module.resources("aws_cloudtrail"):
        if is_false(trail.get("enable_logging")):
            yield hit(
                trail, "CloudTrail trail is switched off (enable_logging = false)", line=trail.line_of("enable_logging")
            )
        if not is_true(trail.get("enable_log_file_validation")):
            yield hit(
                trail,
                "CloudTrail log file validation is off, so tampering goes unnoticed",
                line=trail.line_of("enable_log_file_validation"),
                severity="warning",
                fix="Set enable_log_file_validation = true.",
            )


@rule(
    "OPS-S017",
    category="security",
    severity="warning",
    title="Load balancer access logs are disabled",
    fix="Add access_logs { bucket = <log bucket>, enabled = true }.",
    equivalents=("CKV_AWS_91", "CKV_AWS_92"),
    keywords=("access log",),
)
def lb_logging(module: Module) -> Iterator[Hit]:
    """aws_lb/aws_alb need access_logs with enabled = true; aws_elb needs access_logs not disabled."""
    for lb in module.resources("aws_lb", "aws_alb", "aws_elb"):
        if lb.get("load_balancer_type") == "gateway":
            continue
        logs = lb.child("access_logs")
        if logs is None:
            yield hit(lb, f"Load balancer {lb.name} has no access logs")
        elif lb.kind == "aws_elb" and is_false(logs.get("enabled")):
            yield hit(lb, "Load balancer access logs are disabled", line=logs.line_of("enabled"))
        elif lb.kind != "aws_elb" and not is_true(logs.get("enabled")):
            yield hit(lb, "Load balancer access logs are not enabled", line=logs.line_of("enabled"))


def _prod_databases(module: Module) -> Iterator[Block]:
    """Production primaries: a read replica inherits protection and backups from its source."""
    for db in module.resources("aws_db_instance", "aws_rds_cluster"):
        if db.kind == "aws_db_instance" and db.get("replicate_source_db"):
            continue
        if environment_of(db, module) == "prod":
            yield db


@rule(
    "OPS-S018",
    category="security",
    severity="warning",
    title="Production database has no deletion protection",
    fix="Set deletion_protection = true.",
    equivalents=("CKV_AWS_293", "CKV_AWS_139"),
    keywords=("deletion protection",),
)
def db_deletion_protection(module: Module) -> Iterator[Hit]:
    """A production aws_db_instance / aws_rds_cluster without deletion_protection = true."""
    for db in _prod_databases(module):
        if not is_true(db.get("deletion_protection")):
            yield hit(
                db,
                f"Production database {db.name} can be deleted by one apply (no deletion protection)",
                line=db.line_of("deletion_protection"),
            )


@rule(
    "OPS-S019",
    category="security",
    severity="warning",
    title="Production database backups are off or too short",
    fix="Set backup_retention_period to at least 7 (days) and skip_final_snapshot = false.",
    equivalents=("CKV_AWS_133", "tfsec:aws-rds-specify-backup-retention"),
    keywords=("backup",),
)
def db_backups(module: Module) -> Iterator[Hit]:
    """A production database with backups disabled (critical), under 7 days, or no final snapshot."""
    for db in _prod_databases(module):
        days = as_int(db.get("backup_retention_period"))
        line = db.line_of("backup_retention_period")
        if days == 0:
            yield hit(
                db, f"Production database {db.name} has automated backups disabled", line=line, severity="critical"
            )
        elif db.attr("backup_retention_period") is None:
            yield hit(db, f"Production database {db.name} keeps backups for the 1-day default only")
        elif days is not None and days < 7:
            yield hit(db, f"Production database {db.name} keeps backups for only {days} day(s)", line=line)
        if is_true(db.get("skip_final_snapshot")):
            yield hit(
                db,
                f"Production database {db.name} skips its final snapshot on delete",
                line=db.line_of("skip_final_snapshot"),
            )
